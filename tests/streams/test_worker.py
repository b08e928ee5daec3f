"""The stream worker as users run it: a real broker, a real database, a process that can die."""

from __future__ import annotations

import random

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from sqlalchemy import Engine

from autostamp.settings import TopicSettings
from streams.kafka import KafkaPublisher, ProducerRecord
from streams.metrics import OUTCOMES
from streams.program_signing import ProgramKeys
from tests.streams.conftest import Ledger
from tests.streams.factories import enroll, program, signed, tx, undo
from tests.streams.worker import PROGRAMS_KEY, WorkerProcess, scrape, wait_for

pytestmark = pytest.mark.kafka

# Purchase events that qualified for a program, and undos: every event that can change a count.
REMEMBERED = "SELECT (SELECT count(*) FROM purchase_events) + (SELECT count(*) FROM undos)"


@pytest.fixture
def publisher(kafka_bootstrap: str) -> KafkaPublisher:
    return KafkaPublisher({"bootstrap.servers": kafka_bootstrap})


def produce(publisher: KafkaPublisher, topic: str, *bodies: object) -> None:
    records = []
    for body in bodies:
        value = body if isinstance(body, bytes) else orjson.dumps(body)
        member = body.get("member_id", "m1") if isinstance(body, dict) else "m1"
        records.append(ProducerRecord(topic, value, str(member).encode()))
    publisher.publish(records)


def signed_value(topic: str, key: bytes, value: bytes) -> ProducerRecord:
    """Any bytes, signed: what a holder of the key could publish by mistake."""
    return ProducerRecord(topic, value, key, ProgramKeys((PROGRAMS_KEY,)).sign(key, value))


def consume_all(bootstrap: str, topic: str, expected: int) -> list[object]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader"})
    # Assigned, not subscribed: no group join to wait for.
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    found: list[object] = []
    try:
        wait_for(lambda: _poll_into(consumer, found) >= expected, 60, f"{expected} on {topic}")
    finally:
        consumer.close()
    return found


def _poll_into(consumer: Consumer, found: list[object]) -> int:
    message = consumer.poll(0.5)
    if message is not None and message.error() is None:
        found.append(message)
    return len(found)


def test_a_program_applied_on_the_topic_stamps_purchases_and_pays_out_once(
    engine: Engine,
    ledger: Ledger,
    publisher: KafkaPublisher,
    topics: TopicSettings,
    kafka_bootstrap: str,
    worker: WorkerProcess,
) -> None:
    coffee = program(threshold=2)
    publisher.publish(signed(topics.programs, coffee))
    wait_for(
        lambda: ledger.scalar("SELECT count(*) FROM programs") == 1, 60, "program", worker.log()
    )
    sc = enroll(engine)
    produce(
        publisher,
        topics.transactions,
        tx("t1"),
        b"{not json",
        tx("t2", amount=620),
        tx("t3"),
        undo("r3", "t3"),
        tx("t1"),
    )
    wait_for(lambda: ledger.scalar(REMEMBERED) == 4, 60, "4 events applied", worker.log())
    assert ledger.live_stamps(sc) == ["t1", "t2"]
    assert ledger.rewards(sc) == [(1, "t2", 620)]
    assert ledger.counter(sc) == (0, 0, 2)

    payouts = consume_all(kafka_bootstrap, topics.payouts, 1)
    payout = orjson.loads(payouts[0].value())  # type: ignore[attr-defined]
    assert (payout["amount"], payout["idempotency_key"]) == (620, payout["reward_id"])
    dead = consume_all(kafka_bootstrap, topics.dead_letter, 1)[0]
    assert dead.value() == b"{not json"  # type: ignore[attr-defined]
    headers = dict(dead.headers())  # type: ignore[attr-defined]
    assert headers["error"].startswith(b"not valid JSON")
    assert headers["source-topic"] == topics.transactions.encode()


def test_a_worker_killed_mid_stream_and_restarted_loses_and_doubles_nothing(
    engine: Engine,
    ledger: Ledger,
    publisher: KafkaPublisher,
    topics: TopicSettings,
    worker: WorkerProcess,
) -> None:
    members = [f"m{i}" for i in range(40)]
    from tests.streams.factories import save_programs

    save_programs(engine, program(threshold=4))
    for member in members:
        enroll(engine, member=member)
    rng = random.Random(7)
    history = [tx(f"t{n}", member=rng.choice(members), amount=100 + n) for n in range(3000)]
    produce(publisher, topics.transactions, *history)
    processed = REMEMBERED
    wait_for(lambda: ledger.scalar(processed) > 300, 60, "progress", worker.log())
    worker.kill()
    assert ledger.scalar(processed) < len(history)
    worker.start()
    wait_for(lambda: ledger.scalar(processed) == len(history), 120, "all processed", worker.log())
    per_member = {m: sum(1 for h in history if h["member_id"] == m) for m in members}
    for member, purchases in per_member.items():
        sc = f"sc_lp_coffee_{member}"
        assert len(ledger.live_stamps(sc)) == purchases
        assert len(ledger.rewards(sc)) == purchases // 4
        assert ledger.counter(sc)[0] == purchases % 4
    assert ledger.scalar("SELECT count(*) FROM stamps") == len(history)


def test_a_bad_program_definition_is_dead_lettered_and_the_ones_around_it_apply(
    engine: Engine,
    ledger: Ledger,
    publisher: KafkaPublisher,
    topics: TopicSettings,
    worker: WorkerProcess,
) -> None:
    too_large = program("lp_huge").model_dump(mode="json") | {"qualifying_threshold": 2**40}
    definitions = [
        signed_value(topics.programs, b"lp_bad", b"{not a definition"),
        signed_value(topics.programs, b"lp_huge", orjson.dumps(too_large)),
        *signed(topics.programs, program("lp_good")),
    ]
    publisher.publish(definitions)
    # The three may come in more than one batch: wait for the last of them to be judged.
    wait_for(
        lambda: (
            ledger.scalar("SELECT count(*) FROM dead_letters") == 2
            and ledger.scalar("SELECT count(*) FROM programs") > 0
        ),
        60,
        "2 refused and 1 applied",
        worker.log(),
    )
    assert [r.id for r in ledger.rows("SELECT id FROM programs")] == ["lp_good"]
    reasons = ledger.rows("SELECT source_topic, reason FROM dead_letters ORDER BY source_offset")
    assert {r.source_topic for r in reasons} == {topics.programs}
    assert "out of range" in reasons[1].reason
    assert worker.process is not None and worker.process.poll() is None


def test_the_worker_serves_what_it_did_as_prometheus_metrics(
    engine: Engine,
    ledger: Ledger,
    publisher: KafkaPublisher,
    topics: TopicSettings,
    worker: WorkerProcess,
) -> None:
    publisher.publish(signed(topics.programs, program(threshold=2)))
    wait_for(lambda: ledger.scalar("SELECT count(*) FROM programs") == 1, 60, "program")
    enroll(engine)
    produce(
        publisher,
        topics.transactions,
        tx("t1"),
        tx("t2"),
        tx("t1"),
        tx("other", member="m_not_enrolled"),
        b"{not json",
    )
    port = worker.env["AUTOSTAMP_METRICS_WORKER_PORT"]
    consumed = 'autostamp_worker_transactions_total{outcome="%s"}'

    def all_counted() -> bool:
        samples = scrape(port)
        return sum(samples.get(consumed % o, 0) for o in OUTCOMES) == 5

    wait_for(all_counted, 60, "5 transactions counted", worker.log())
    samples = scrape(port)
    # t1 twice: one of them repeated; a purchase of a member with no collection is kept
    # (an undo may name it later) or unmatched, as the ledger decides.
    assert samples[consumed % "repeated"] >= 1
    assert sum(samples[consumed % o] for o in ("applied", "repeated", "unmatched")) == 4
    assert samples[consumed % "dead_lettered"] == 1
    assert samples['autostamp_worker_effects_total{kind="stamps"}'] == 2
    assert samples['autostamp_worker_effects_total{kind="rewards"}'] == 1
    assert samples['autostamp_worker_dead_letters_total{source="transactions"}'] == 1
    assert samples["autostamp_worker_batch_duration_seconds_count"] >= 1
    wait_for(
        lambda: any(k.startswith("autostamp_worker_consumer_lag{") for k in scrape(port)),
        30,
        "the lag of the held partitions",
        worker.log(),
    )
    lags = {k: v for k, v in scrape(port).items() if k.startswith("autostamp_worker_consumer_lag")}
    assert all(lag == 0 for lag in lags.values())
