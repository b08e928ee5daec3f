"""Which Kafka clients a bank can publish transactions with to the broker of the embedded default.

confluent-kafka, kafka-python and aiokafka each produce a transaction that every one of them
reads back, and the worker stamps what kafka-python and aiokafka publish. kcat runs when it is
on PATH: with librdkafka 2.2.0 or later it is one more client like the others; before 2.2.0 it
cannot read the broker's ApiVersions answer, and the tests below state exactly what fails and
what `-X api.version.request=false -X broker.version.fallback=0.9.0` still allows. They assert
the failures rather than skip them: a broker that stops causing one makes a test fail, and the
README's table of clients is then due for a change.
"""

from __future__ import annotations

import orjson
import pytest
from _pytest.mark import ParameterSet
from sqlalchemy import Engine

from autostamp.settings import TopicSettings
from tests.streams.conftest import Ledger
from tests.streams.factories import enroll, program, save_programs, tx
from tests.streams.kafka_clients import (
    LIBRDKAFKA_TAG_FIX,
    AioKafka,
    ConfluentKafka,
    KafkaClient,
    KafkaPython,
    Kcat,
    kcat_librdkafka,
)
from tests.streams.worker import WorkerProcess, wait_for
from tests.support.kafka_wire import api_versions_v3_tagged_fields

pytestmark = [
    pytest.mark.kafka,
    # kafka-python 3.0 loads its protocol schemas with a call Python 3.11 deprecates.
    pytest.mark.filterwarnings("ignore:(read|open)_text is deprecated:DeprecationWarning"),
]

KCAT_LIBRDKAFKA = kcat_librdkafka()
KCAT_SHOWN = ".".join(map(str, KCAT_LIBRDKAFKA)) if KCAT_LIBRDKAFKA else ""
# librdkafka then sends no ApiVersions request and assumes the API versions of Kafka 0.9
# (with a fallback of 0.10 or later it asks anyway).
KCAT_FALLBACK = ("-X", "api.version.request=false", "-X", "broker.version.fallback=0.9.0")
# The tagged fields the broker writes at their default values; Apache Kafka writes none of them.
DEFAULT_TAGGED_FIELDS = [(0, b"\x01"), (1, b"\xff" * 8), (2, b"\x01"), (3, b"\x00")]

needs_old_kcat = pytest.mark.skipif(
    KCAT_LIBRDKAFKA is None or KCAT_LIBRDKAFKA >= LIBRDKAFKA_TAG_FIX,
    reason="kcat is not on PATH"
    if KCAT_LIBRDKAFKA is None
    else f"kcat's librdkafka {KCAT_SHOWN} reads tagged fields correctly",
)


def kcat_param() -> ParameterSet:
    if KCAT_LIBRDKAFKA is None:
        return pytest.param(None, id="kcat", marks=pytest.mark.skip(reason="kcat is not on PATH"))
    if KCAT_LIBRDKAFKA < LIBRDKAFKA_TAG_FIX:
        reason = (
            f"kcat's librdkafka {KCAT_SHOWN} misreads the broker's ApiVersions answer: "
            "test_kcat_before_librdkafka_2_2_fails_on_the_api_versions_answer says how"
        )
        return pytest.param(None, id="kcat", marks=pytest.mark.skip(reason=reason))
    return pytest.param(Kcat(), id="kcat")


def params(*clients: KafkaClient) -> list[ParameterSet]:
    return [pytest.param(client, id=client.name) for client in clients]


CLIENTS = [*params(ConfluentKafka(), KafkaPython(), AioKafka()), kcat_param()]
# The worker's own client is confluent-kafka: the others are what a bank may bring.
BANK_CLIENTS = [*params(KafkaPython(), AioKafka()), kcat_param()]


@pytest.mark.parametrize("reader", CLIENTS)
@pytest.mark.parametrize("producer", CLIENTS)
def test_a_transaction_produced_with_one_client_is_read_back_with_another(
    producer: KafkaClient, reader: KafkaClient, kafka_bootstrap: str, topics: TopicSettings
) -> None:
    value = orjson.dumps(tx(f"t_{producer.name}"))
    producer.produce(kafka_bootstrap, topics.transactions, b"m1", value)
    assert reader.read(kafka_bootstrap, topics.transactions, 1, 30) == [(b"m1", value)]


@pytest.mark.slow
@pytest.mark.parametrize("client", BANK_CLIENTS)
def test_the_worker_stamps_transactions_a_bank_produced_with(
    client: KafkaClient,
    engine: Engine,
    ledger: Ledger,
    kafka_bootstrap: str,
    topics: TopicSettings,
    worker: WorkerProcess,
) -> None:
    save_programs(engine, program(threshold=2))
    collection = enroll(engine)
    for purchase in ("t1", "t2"):
        client.produce(kafka_bootstrap, topics.transactions, b"m1", orjson.dumps(tx(purchase)))
    wait_for(lambda: len(ledger.live_stamps(collection)) == 2, 60, "2 stamps", worker.log)
    assert ledger.live_stamps(collection) == ["t1", "t2"]
    assert ledger.rewards(collection) == [(1, "t2", 450)]


def test_the_broker_writes_every_api_versions_tagged_field_even_at_its_default(
    kafka_bootstrap: str,
) -> None:
    """What librdkafka before 2.2.0 misreads: it skips size - 1 bytes of each tagged field,
    so after the first one it takes a value byte for a tag and 0xff bytes for a size."""
    host, port = kafka_bootstrap.rsplit(":", 1)
    assert api_versions_v3_tagged_fields(host, int(port)) == DEFAULT_TAGGED_FIELDS


@needs_old_kcat
def test_kcat_before_librdkafka_2_2_fails_on_the_api_versions_answer(kafka_bootstrap: str) -> None:
    with pytest.raises(AssertionError, match="ApiVersionRequest failed: Local: Read underflow"):
        Kcat().run(kafka_bootstrap, "-L", "-m", "3")


@needs_old_kcat
def test_kcat_before_librdkafka_2_2_lists_and_reads_with_the_fallback_of_kafka_0_9(
    kafka_bootstrap: str, topics: TopicSettings
) -> None:
    kcat = Kcat(KCAT_FALLBACK)
    listing = kcat.run(kafka_bootstrap, "-L", "-t", topics.transactions)
    assert f'topic "{topics.transactions}" with 2 partitions' in listing
    value = orjson.dumps(tx("t1"))
    ConfluentKafka().produce(kafka_bootstrap, topics.transactions, b"m1", value)
    assert kcat.read(kafka_bootstrap, topics.transactions, 1, 30) == [(b"m1", value)]


@needs_old_kcat
def test_kcat_before_librdkafka_2_2_cannot_produce_even_with_the_fallback_of_kafka_0_9(
    kafka_bootstrap: str, topics: TopicSettings
) -> None:
    """The fallback produces message sets of format v0, and the broker reads only record
    batches (v2): it closes the connection."""
    with pytest.raises(AssertionError, match="Broker transport failure"):
        Kcat(KCAT_FALLBACK).produce(kafka_bootstrap, topics.transactions, b"m1", b"{}")
