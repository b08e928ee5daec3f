"""Consumer groups that change under the stream: scaling 1 → 2 → 1 (K15), a replay from 0 (K17)."""

from __future__ import annotations

import random
import uuid

import pytest

from autostamp.settings import TopicSettings
from streams.kafka import KafkaPublisher
from tests.faults.kafka_topics import behind, topic_ends
from tests.faults.processes import Workers, fault_environment, owned_partitions, running
from tests.faults.workload import (
    PROCESSED,
    Feed,
    Workload,
    assert_exactly_once,
    produce,
    snapshot,
    subscribe_to_everything,
)
from tests.streams.conftest import Ledger

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_scaling_from_one_worker_to_two_and_back_mid_stream_loses_and_doubles_nothing(
    database_url: str,
    ledger: Ledger,
    kafka_bootstrap: str,
    four_partitions: TopicSettings,
    publisher: KafkaPublisher,
    workers: Workers,
) -> None:
    topics, workload = four_partitions, Workload()
    workload.seed(ledger.engine)
    env = fault_environment(database_url, kafka_bootstrap, topics)
    first = workers.start(env)
    produce(publisher, topics.transactions, workload.buy(10))
    workers.wait_for(lambda: ledger.scalar(PROCESSED) == 10, 60, "the first worker to stamp")

    def stamping_goes_on(what: str) -> None:
        then = ledger.scalar(PROCESSED) + 500
        workers.wait_for(lambda: ledger.scalar(PROCESSED) >= then, 60, what)

    with Feed(publisher, topics.transactions, workload):
        stamping_goes_on("one worker to stamp")
        second = workers.start(env)
        workers.wait_for(lambda: len(owned_partitions(second)) == 2, 60, "a share for the second")
        workers.wait_for(lambda: len(owned_partitions(first)) == 2, 30, "the first to give it")
        stamping_goes_on("two workers to stamp")
        first.stop()  # SIGTERM: it commits what it stored and leaves the group
        workers.wait_for(lambda: len(owned_partitions(second)) == 4, 60, "the second to take all")
        stamping_goes_on("the second worker alone to stamp")

    produced = len(workload.purchases)
    workers.wait_for(lambda: ledger.scalar(PROCESSED) == produced, 60, "every purchase")
    assert first.process is not None and first.process.returncode == 0, first.log()
    assert running(second), second.log()
    assert_exactly_once(ledger, database_url, workload)


def test_a_new_consumer_group_replaying_the_topic_from_offset_0_changes_nothing(
    database_url: str,
    ledger: Ledger,
    kafka_bootstrap: str,
    topics: TopicSettings,
    publisher: KafkaPublisher,
    workers: Workers,
) -> None:
    workload = Workload()
    workload.seed(ledger.engine)
    subscribe_to_everything(ledger.engine)
    purchases = workload.buy(2000)
    resent = random.Random(3).sample(purchases, 100)  # a bank sending some of them again
    history = [*purchases, b"{not json", *resent]
    produce(publisher, topics.transactions, history)
    ends = topic_ends(kafka_bootstrap, topics.transactions, len(history))

    def read_to_the_end(group: str) -> bool:
        return behind(kafka_bootstrap, group, topics.transactions, ends) == 0

    env = fault_environment(database_url, kafka_bootstrap, topics)
    first = workers.start(env)
    group = env["AUTOSTAMP_KAFKA_CONSUMER_GROUP"]
    workers.wait_for(lambda: read_to_the_end(group), 60, "the first group to read it all")
    first.stop()
    before = snapshot(ledger)

    replay = env | {"AUTOSTAMP_KAFKA_CONSUMER_GROUP": f"disaster-recovery-{uuid.uuid4().hex[:8]}"}
    second = workers.start(replay)
    new_group = replay["AUTOSTAMP_KAFKA_CONSUMER_GROUP"]
    workers.wait_for(lambda: read_to_the_end(new_group), 60, "the new group to read it all")
    second.stop()

    assert before["webhook_messages"] and before["dead_letters"]
    assert snapshot(ledger) == before
    assert_exactly_once(ledger, database_url, workload, dead_letters=1)
