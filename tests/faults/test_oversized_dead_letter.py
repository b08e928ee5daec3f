"""One 3 MB message that is not JSON (issue 10): kept whole, published truncated, no crash."""

from __future__ import annotations

import hashlib
import os

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from sqlalchemy import Engine

from autostamp.settings import TopicSettings
from streams.kafka import KafkaPublisher
from tests.faults.processes import Workers, fault_environment, running
from tests.faults.workload import PROCESSED, Workload, assert_exactly_once, produce
from tests.streams.conftest import Ledger
from tests.streams.worker import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

THREE_MB = 3 * 1024 * 1024
PUBLISHED_PREFIX = 64 * 1024  # streams.relay.PUBLISHED_PREFIX_BYTES


def read_one(bootstrap: str, topic: str, partitions: int) -> Message:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "fault-reader"})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    found: list[Message] = []

    def polled() -> bool:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            found.append(message)
        return bool(found)

    try:
        wait_for(polled, 30, f"a message on {topic}")
    finally:
        consumer.close()
    return found[0]


def test_a_3mb_malformed_message_is_dead_lettered_whole_and_the_stream_goes_on(
    engine: Engine,
    ledger: Ledger,
    database_url: str,
    kafka_bootstrap: str,
    topics: TopicSettings,
    workers: Workers,
) -> None:
    workload = Workload()
    workload.seed(engine)
    # The broker takes 3 MB; our producer's own limit (1 MB by default) is raised for the test.
    publisher = KafkaPublisher({"bootstrap.servers": kafka_bootstrap, "message.max.bytes": 4 << 20})
    worker = workers.start(fault_environment(database_url, kafka_bootstrap, topics))
    produce(publisher, topics.transactions, workload.buy(1))
    workers.wait_for(lambda: ledger.scalar(PROCESSED) == 1, 60, "the worker to stamp")

    # Random bytes: lz4 cannot shrink them below the broker's or the relay's limits.
    malformed = b"not json: " + os.urandom(THREE_MB - 10)
    produce(publisher, topics.transactions, [malformed])
    produce(publisher, topics.transactions, workload.buy(20))
    workers.wait_for(lambda: ledger.scalar(PROCESSED) == 21, 10, "the purchases after it")

    [kept] = ledger.rows("SELECT value, size, sha256, reason FROM dead_letters")
    assert (kept.size, bytes(kept.value)) == (THREE_MB, malformed)
    assert kept.sha256 == hashlib.sha256(malformed).hexdigest()
    assert kept.reason  # the worker says why; the topic's header carries it

    letter = read_one(kafka_bootstrap, topics.dead_letter, topics.partitions)
    headers = dict(letter.headers() or [])
    assert letter.value() == malformed[:PUBLISHED_PREFIX]
    assert headers["error"] == kept.reason.encode()[:1024]
    assert headers["original-size"] == str(THREE_MB).encode()
    assert headers["original-sha256"] == hashlib.sha256(malformed).hexdigest().encode()
    assert headers["truncated"] == b"true"

    assert running(worker), workers.logs()  # the same process all along: no restart
    assert_exactly_once(ledger, database_url, workload, dead_letters=1)
