"""An offset is committed only once the ledger holds its batch (FAULTS K1, K2, K3).

The batch consumer runs here in-process against the real broker and database; the first
worker dies while applying its third batch, before the database commit, and a replacement
in the same group takes over from the committed offsets. The same check, run with a consumer
that stores offsets as soon as it reads them, finds purchases lost: the harness tells the
right order from the wrong one.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine

from autostamp.settings import TopicSettings
from ledger.batch import BatchOutcome
from streams.config import Topics, WorkerConfig
from streams.consumer import BatchConsumer
from streams.decoding import RawMessage
from streams.kafka import KafkaPublisher, ProducerRecord
from streams.service import StampingService
from tests.streams.conftest import Ledger
from tests.streams.factories import enroll, program, tx

pytestmark = pytest.mark.kafka

PURCHASES = 300
MEMBERS = [f"m{n}" for n in range(10)]
LIVE = "SELECT count(*) FROM stamps WHERE status = 'live'"


class Crash(Exception):
    """The worker dies here."""


class StoresOffsetsFirst(BatchConsumer):
    """The regression: offsets stored as soon as a batch is read, before the ledger has it."""

    async def _poll(self) -> list[Any]:
        records = await super()._poll()
        super()._store(records)
        return records

    def _store(self, records: list[Any]) -> None:
        return None


class Draining(BatchConsumer):
    """A replacement worker that stops once the topic has had nothing more for a while."""

    received, idle = 0, 0

    async def _poll(self) -> list[Any]:
        records = await super()._poll()
        self.received += len(records)
        self.idle = 0 if records else self.idle + 1
        return records

    def drained(self) -> bool:
        return (self.received > 0 and self.idle >= 40) or self.idle >= 600


def config(bootstrap: str, topics: TopicSettings, group: str) -> WorkerConfig:
    return WorkerConfig(
        client={"bootstrap.servers": bootstrap},
        group=group,
        topics=Topics(transactions=topics.transactions),
        session_timeout_s=6,
        rebalance_timeout_s=6,
        heartbeat_interval_s=1,
        batch_size=50,
        batch_within_s=0.05,
        commit_interval_s=0.1,
    )


@pytest.fixture
async def service(make_service: Callable[..., Any]) -> StampingService:
    stamping: StampingService = await make_service(program(threshold=1_000))
    return stamping


@pytest.fixture
def produced(
    service: StampingService, engine: Engine, kafka_bootstrap: str, topics: TopicSettings
) -> None:
    for member in MEMBERS:
        enroll(engine, member=member)
    records = []
    for n in range(PURCHASES):
        member = MEMBERS[n % len(MEMBERS)]
        body = orjson.dumps(tx(f"t{n}", member=member))
        records.append(ProducerRecord(topics.transactions, body, member.encode()))
    KafkaPublisher({"bootstrap.servers": kafka_bootstrap}).publish(records)


async def die_on_the_third_batch(consumer: BatchConsumer, service: StampingService) -> None:
    batches = 0

    async def handle(messages: Sequence[RawMessage]) -> BatchOutcome:
        nonlocal batches
        batches += 1
        if batches == 3:
            raise Crash  # before the database commit of this batch
        return await service.stamp(messages)

    with contextlib.suppress(Crash):
        await consumer.run(handle, lambda: False)


async def crash_and_replace(
    first: type[BatchConsumer], service: StampingService, bootstrap: str, topics: TopicSettings
) -> None:
    group = f"acked-{uuid.uuid4().hex[:8]}"
    await die_on_the_third_batch(first(config(bootstrap, topics, group)), service)
    replacement = Draining(config(bootstrap, topics, group))
    await replacement.run(service.stamp, replacement.drained)


async def test_a_worker_dying_between_reading_and_committing_loses_nothing(
    produced: None,
    service: StampingService,
    ledger: Ledger,
    kafka_bootstrap: str,
    topics: TopicSettings,
) -> None:
    await crash_and_replace(BatchConsumer, service, kafka_bootstrap, topics)
    assert ledger.scalar(LIVE) == PURCHASES


async def test_the_same_check_catches_offsets_stored_before_the_ledger_commits(
    produced: None,
    service: StampingService,
    ledger: Ledger,
    kafka_bootstrap: str,
    topics: TopicSettings,
) -> None:
    await crash_and_replace(StoresOffsetsFirst, service, kafka_bootstrap, topics)
    assert ledger.scalar(LIVE) < PURCHASES
