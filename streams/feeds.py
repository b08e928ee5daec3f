"""Feeds from outside Kafka: a file of transactions (JSON lines or CSV) put on the topic."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition

from rules import CardTransaction, InvalidTransaction, parse_transaction
from streams.kafka import KafkaPublisher, ProducerRecord


@dataclass
class IngestReport:
    """What a file gave: how many lines went on the topic, and each refusal with its line."""

    produced: int = 0
    messages: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)

    def reasons(self) -> Counter[str]:
        return Counter(reason.split(":", 1)[0] for _, reason in self.refused)


def _records(
    topic: str, valid: Iterable[CardTransaction], pack: int
) -> Iterator[tuple[ProducerRecord, int]]:
    """One message per transaction, or per `pack` transactions of one member key."""
    if pack <= 1:
        for tx in valid:
            yield ProducerRecord(topic, tx.model_dump_json().encode(), tx.member_id.encode()), 1
        return
    buffers: dict[str, list[CardTransaction]] = {}
    for tx in valid:
        group = buffers.setdefault(tx.member_id, [])
        group.append(tx)
        if len(group) >= pack:
            yield _packed(topic, buffers.pop(tx.member_id)), pack
    for group in buffers.values():
        yield _packed(topic, group), len(group)


def _packed(topic: str, group: list[CardTransaction]) -> ProducerRecord:
    body = b"[" + b",".join(tx.model_dump_json().encode() for tx in group) + b"]"
    return ProducerRecord(topic, body, group[0].member_id.encode())


def ingest(
    lines: Iterable[tuple[int, bytes]],
    publisher: KafkaPublisher,
    topic: str,
    pack: int = 1,
    progress: Callable[[int], None] = lambda n: None,
) -> IngestReport:
    """Validate each line and produce the valid ones, keyed by member; refuse the rest."""
    report = IngestReport()

    def valid() -> Iterator[CardTransaction]:
        for number, raw in lines:
            progress(1)
            try:
                yield parse_transaction(raw)
            except InvalidTransaction as exc:
                report.refused.append((number, str(exc)))

    chunk: list[ProducerRecord] = []
    for record, count in _records(topic, valid(), pack):
        chunk.append(record)
        report.produced += count
        if len(chunk) >= 5000:
            report.messages += publisher.publish(chunk)
            chunk = []
    report.messages += publisher.publish(chunk)
    return report


class WindowUnreadable(Exception):
    """The broker did not hand over the whole window in time; the message says how far it got."""


def read_window(
    client_config: dict[str, Any],
    topic: str,
    start: datetime,
    end: datetime,
    patience: float = 30.0,
) -> Iterator[tuple[str, bytes]]:
    """Every transaction of the messages stamped from `start` (inclusive) to `end` (exclusive),
    partition by partition; a batch message (a JSON array) gives each of its items.

    Each partition is read from the offset `offsets_for_times` gives for `start` to the first
    message stamped at or after `end`; messages are kept by their own timestamps too, so a
    broker that answers `offsets_for_times` loosely (the embedded one answers 0) still gives
    the window. The partitions are assigned directly: no group is joined, nothing committed.
    """
    # The client insists on a group id; with `assign` and no commit, the group is never joined.
    settings = {"group.id": "autostamp-backtest", "enable.auto.commit": False}
    consumer = Consumer({**client_config, **settings})
    try:
        bounds = _window_offsets(consumer, topic, start, patience)
        consumer.assign([TopicPartition(topic, p, low) for p, (low, high) in bounds.items()])
        window = (int(start.timestamp() * 1000), int(end.timestamp() * 1000))
        yield from _read_to(consumer, bounds, window, patience)
    finally:
        consumer.close()


def _window_offsets(
    consumer: Consumer, topic: str, start: datetime, patience: float
) -> dict[int, tuple[int, int]]:
    """Per partition: the first offset at or after `start`, and the end of the partition."""
    metadata = consumer.list_topics(topic, timeout=patience).topics[topic]
    if metadata.error is not None:
        raise WindowUnreadable(f"topic {topic}: {metadata.error.str()}")
    millis = int(start.timestamp() * 1000)
    asked = [TopicPartition(topic, p, millis) for p in sorted(metadata.partitions)]
    bounds: dict[int, tuple[int, int]] = {}
    for found in consumer.offsets_for_times(asked, timeout=patience):
        high = consumer.get_watermark_offsets(found, timeout=patience)[1]
        low = high if found.offset < 0 else found.offset  # nothing at or after the start
        if high > low:
            bounds[found.partition] = (low, high)
    return bounds


def _read_to(
    consumer: Consumer, bounds: dict[int, tuple[int, int]], window: tuple[int, int], patience: float
) -> Iterator[tuple[str, bytes]]:
    """The messages of the window: a partition is done at its first message stamped at or
    after the window's end (where `offsets_for_times` would put the end), or at its end."""
    left = dict(bounds)
    while left:
        message = consumer.poll(patience)
        if message is None:
            raise WindowUnreadable(
                f"no message for {patience:.0f} s; partitions left: {sorted(left)}"
            )
        error = message.error()
        if error is not None:
            raise WindowUnreadable(f"partition {message.partition()}: {error.str()}")
        partition, offset = message.partition() or 0, message.offset() or 0
        stamped = message.timestamp()[1]
        if partition not in left:
            continue
        if stamped >= window[1] or offset + 1 >= left[partition][1]:
            del left[partition]
        if window[0] <= stamped < window[1]:
            yield from _items(f"partition {partition} offset {offset}", message.value() or b"")


def _items(where: str, value: bytes) -> Iterator[tuple[str, bytes]]:
    if not value.lstrip().startswith(b"["):
        yield where, value
        return
    try:
        items = orjson.loads(value)
    except orjson.JSONDecodeError:
        yield where, value
        return
    for position, item in enumerate(items):
        yield f"{where} item {position}", orjson.dumps(item)
