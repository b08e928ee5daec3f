"""The transactions topic read in batches with confluent-kafka: acked always means committed.

A fetched batch is applied in parts (`PART_BYTES`), in order. An offset is stored only after
the part holding it has committed in the ledger, and librdkafka commits stored offsets in the
background, on a rebalance and on close. So:

- a crash before the database commit leaves the batch unstored: it is read again;
- a crash after it, before the offset commit, reads it again too, and the ledger finds every
  event already applied;
- the next batch is fetched while one is applied; a rebalance served meanwhile (librdkafka
  calls back from `consume`) commits what was stored, so the batch being applied is read
  again by the partition's next owner, and found in the ledger;
- a worker that stalls past the poll interval loses its partitions, and the batch it was
  applying is applied again by their new owner, harmlessly.

Partitions move with the cooperative-sticky assignor: a new worker takes partitions from the
others without stopping all of them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

from ledger.batch import BatchOutcome
from ledger.errors import BrokerRefused
from streams.config import WorkerConfig
from streams.decoding import RawMessage
from streams.metrics import WorkerMetrics

log = logging.getLogger(__name__)

T = TypeVar("T")

# The most bytes of messages applied in one part of a fetched batch: a part of single
# transactions is a whole batch (2,000 of about 400 bytes), one of bank batches a few dozen.
PART_BYTES = 1024 * 1024
LAG_EVERY_S = 5.0

Handler = Callable[[Sequence[RawMessage]], Awaitable[BatchOutcome]]


def consumer_settings(config: WorkerConfig) -> dict[str, Any]:
    rebalance_s = max(config.rebalance_timeout_s, config.session_timeout_s)
    return {
        **config.client,
        "group.id": config.group,
        "enable.auto.commit": True,
        "auto.commit.interval.ms": int(config.commit_interval_s * 1000),
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": int(config.session_timeout_s * 1000),
        "heartbeat.interval.ms": int(config.heartbeat_interval_s * 1000),
        # The group waits this long for a member to rejoin a rebalance.
        "max.poll.interval.ms": int(rebalance_s * 1000),
        "fetch.wait.max.ms": 50,
    }


class BatchConsumer:
    """Feeds batches of the transactions topic to a handler, storing offsets after each."""

    def __init__(self, config: WorkerConfig, metrics: WorkerMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics
        self._consumer: Any = None
        self._polling: asyncio.Future[list[Any]] | None = None
        self._lag_due = 0.0

    async def run(self, handle: Handler, stopping: Callable[[], bool]) -> None:
        """Consume until `stopping()`; a failing handler stops it with nothing stored."""
        from confluent_kafka import Consumer

        self._consumer = Consumer(consumer_settings(self.config))
        self._consumer.subscribe(
            [self.config.topics.transactions],
            on_assign=_assigned,
            on_revoke=_revoked,
            on_lost=_lost,
        )
        try:
            while not stopping():
                for part in parts(await self._poll(), _value_size, PART_BYTES):
                    messages = _messages(part)
                    if messages:
                        started = time.monotonic()
                        outcome = await handle(messages)
                        self._store(part)
                        if self.metrics is not None:
                            self.metrics.applied(outcome, time.monotonic() - started)
                self._measure_lag()
        finally:
            await self._close()

    async def _poll(self) -> list[Any]:
        """The next batch; the one after it is fetched while this one is applied."""
        if self._polling is None:
            self._polling = self._fetch()
        records = await self._polling
        self._polling = self._fetch()
        return records

    def _fetch(self) -> asyncio.Future[list[Any]]:
        consumer, config = self._consumer, self.config
        return asyncio.ensure_future(
            asyncio.to_thread(consumer.consume, config.batch_size, config.batch_within_s)
        )

    def _store(self, records: list[Any]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        last: dict[tuple[str, int], int] = {}
        for record in records:
            if record.error() is None:
                key = (record.topic(), record.partition())
                last[key] = max(last.get(key, -1), record.offset())
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
        try:
            self._consumer.store_offsets(offsets=offsets)
        except KafkaException as exc:
            # The partitions moved on while the batch was applied: their new owner reads it
            # again, and finds it in the ledger.
            log.warning("offsets not stored (partitions reassigned?): %s", exc)

    def _measure_lag(self) -> None:
        """Each held partition's lag, from the high watermarks of the latest fetches (no
        request to the broker), at most every `LAG_EVERY_S`."""
        now = time.monotonic()
        if self.metrics is None or now < self._lag_due:
            return
        self._lag_due = now + LAG_EVERY_S
        held = self._consumer.assignment()
        lags = {}
        for position in self._consumer.position(held) if held else []:
            _, high = self._consumer.get_watermark_offsets(position, cached=True)
            if high >= 0 and position.offset >= 0:
                lags[position.partition] = max(0, high - position.offset)
        self.metrics.lags(lags)

    async def _close(self) -> None:
        if self._polling is not None and not self._polling.done():
            # Let the poll in flight return before closing the client under it.
            await asyncio.wait([self._polling], timeout=self.config.batch_within_s + 5)
        if self._consumer is not None:
            # Commits what was stored and leaves the group, so others take over at once.
            await asyncio.to_thread(self._consumer.close)
            self._consumer = None


def parts(items: Sequence[T], size: Callable[[T], int], limit: int) -> Iterator[list[T]]:
    """`items` in order, in runs of at most `limit` in total `size` (an item larger than the
    limit alone): bank batch messages are a hundred times the size of one transaction, and a
    part bounds the work that a rebalance can make another worker repeat."""
    part: list[T] = []
    total = 0
    for item in items:
        if part and total + size(item) > limit:
            yield part
            part, total = [], 0
        part.append(item)
        total += size(item)
    if part:
        yield part


def _value_size(record: Any) -> int:
    return len(record.value() or b"")


def _messages(records: list[Any]) -> list[RawMessage]:
    messages = []
    for record in records:
        error = record.error()
        if error is None:
            messages.append(
                RawMessage(
                    record.topic(),
                    record.partition(),
                    record.offset(),
                    record.key(),
                    record.value(),
                )
            )
        elif error.fatal():
            raise BrokerRefused(f"the consumer failed for good: {error}", error.str())
        elif not error.retriable() and _unknown_topic(error):
            raise BrokerRefused(
                f"cannot read the transactions topic: {error}",
                "create the topics with `autostamp setup`, or check the consumer's ACLs",
            )
        else:
            log.warning("consumer: %s", error)
    return messages


def _unknown_topic(error: Any) -> bool:
    from confluent_kafka import KafkaError

    return error.code() in (
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
    )


def _assigned(consumer: Any, partitions: list[Any]) -> None:
    log.info("partitions assigned: %s", _names(partitions))


def _revoked(consumer: Any, partitions: list[Any]) -> None:
    log.info("partitions revoked: %s", _names(partitions))


def _lost(consumer: Any, partitions: list[Any]) -> None:
    log.warning("partitions lost (their batches are read again elsewhere): %s", _names(partitions))


def _names(partitions: list[Any]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "none"


def held_partitions(log: str) -> set[str]:
    """The partitions a worker's log says its consumer holds, from the lines the callbacks
    above write: assignments less revocations and losses, summed up (cooperative-sticky
    assignment reports only what changes)."""
    held: set[str] = set()
    for line in log.splitlines():
        for event, change in (("assigned", held.update), ("revoked", held.difference_update)):
            if f"partitions {event}: " in line:
                change(_listed(line.split(f"partitions {event}: ", 1)[1]))
        if "partitions lost " in line:
            held.difference_update(_listed(line.split("): ", 1)[1]))
    return held


def _listed(names: str) -> set[str]:
    return {name.strip() for name in names.split(",")} - {"none", ""}
