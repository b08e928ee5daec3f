"""Where a worker's CPU goes, stage by stage, measured in this process on one topic.

The same code the worker runs, in the same order, with the CPU time of this process
(librdkafka's threads included) read around each stage: consume (confluent-kafka's batch
consume), decode, match, plan (the pure planner), database (reading the view and writing the
effects: SQL, parameters, the driver) and outbox (building and writing the webhook events).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import create_async_engine

from autostamp.wiring import tune_collector
from ledger.catalog import ProgramCatalog
from ledger.outbox import enqueue_events
from ledger.planner import plan_batch
from ledger.stamping import write_effects
from ledger.views import read_view
from streams.decoding import Decoded, RawMessage, decode_into

STAGES = ("consume", "decode", "match", "plan", "database", "outbox")


class StageClock:
    """CPU seconds of this process per stage."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.process_time()
        try:
            yield
        finally:
            self.seconds[name] += time.process_time() - start


def consume_all(bootstrap: str, topic: str, count: int, clock: StageClock) -> list[RawMessage]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-stages"})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    messages: list[RawMessage] = []
    try:
        while len(messages) < count:
            with clock.stage("consume"):
                records = consumer.consume(2000, 1.0)
                messages += [
                    RawMessage(
                        str(r.topic()),
                        int(r.partition() or 0),
                        int(r.offset() or 0),
                        r.key(),
                        r.value(),
                    )
                    for r in records
                    if r.error() is None
                ]
    finally:
        consumer.close()
    return messages


def _raw(record: Any) -> RawMessage:
    topic, partition, offset = record.topic(), record.partition(), record.offset()
    return RawMessage(topic, partition, offset, record.key(), record.value())


async def _apply(
    database_url: str, messages: list[RawMessage], clock: StageClock, batch: int
) -> None:
    engine = create_async_engine(database_url)
    catalog = ProgramCatalog()
    now = datetime.now(UTC)
    try:
        for start in range(0, len(messages), batch):
            decoded = Decoded()
            with clock.stage("decode"):
                for message in messages[start : start + batch]:
                    decode_into(message, decoded)
            async with engine.begin() as conn:
                await catalog.sync(conn)
                with clock.stage("match"):
                    incoming = [catalog.incoming(tx, s) for tx, s in decoded.events]
                with clock.stage("database"):
                    view = await read_view(conn, incoming, catalog.programs)
                with clock.stage("plan"):
                    plan = plan_batch(incoming, view, catalog.programs, now)
                with clock.stage("database"):
                    await write_effects(conn, plan, now)
                with clock.stage("outbox"):
                    await enqueue_events(conn, plan.events)
    finally:
        await engine.dispose()


def stage_costs(
    database_url: str, bootstrap: str, topic: str, count: int, batch: int = 2000
) -> dict[str, Any]:
    """CPU microseconds per transaction of each stage, over `count` messages of `topic`."""
    tune_collector()  # the worker's, for the same costs
    clock = StageClock()
    messages = consume_all(bootstrap, topic, count, clock)
    asyncio.run(_apply(database_url, messages, clock, batch))
    return {name: 1e6 * clock.seconds[name] / len(messages) for name in STAGES}
