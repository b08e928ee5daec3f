"""Turns raw transactions-topic messages into valid events and dead-letter records.

A message holds one transaction (a JSON object) or a bank batch (a JSON array of them).
Every element is judged alone: one bad element of a batch is dead-lettered with its
position, and the good ones around it go on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from ledger.batch import Rejected, Source
from rules import (
    CardTransaction,
    InvalidTransaction,
    parse_batch,
    parse_transaction,
    validate_transaction,
)

# A batch message may carry this many transactions at most.
MAX_BATCH_ITEMS = 10_000
MAX_BATCH_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class RawMessage:
    """One consumed record, as the broker gave it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class Decoded:
    """The valid events of some messages, in order, and what was refused."""

    events: list[tuple[CardTransaction, Source]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def decode(messages: Iterable[RawMessage]) -> Decoded:
    decoded = Decoded()
    for message in messages:
        decode_into(message, decoded)
    return decoded


def decode_into(message: RawMessage, into: Decoded) -> None:
    """Add the events of one message, and its refusals, to `into`."""
    source = Source(message.topic, message.partition, message.offset)
    value = message.value or b""
    if value[:1] == b"[" or value.lstrip()[:1] == b"[":
        _decode_batch(message, value, into)
        return
    try:
        into.events.append((parse_transaction(value), source))
    except InvalidTransaction as exc:
        into.rejected.append(Rejected(source, message.key, value, str(exc)))


def _decode_batch(message: RawMessage, value: bytes, into: Decoded) -> None:
    whole = Source(message.topic, message.partition, message.offset)
    if len(value) <= MAX_BATCH_BYTES:
        try:
            valid = parse_batch(value)
        except InvalidTransaction:
            valid = []
        if 0 < len(valid) <= MAX_BATCH_ITEMS:
            topic, partition, offset = message.topic, message.partition, message.offset
            into.events += [(tx, Source(topic, partition, offset, i)) for i, tx in enumerate(valid)]
            return
    items = _batch_items(value)
    if isinstance(items, str):
        into.rejected.append(Rejected(whole, message.key, value, items))
        return
    for index, item in enumerate(items):
        source = Source(message.topic, message.partition, message.offset, index)
        try:
            into.events.append((validate_transaction(item), source))
        except InvalidTransaction as exc:
            reason = f"item {index}: {exc}"
            into.rejected.append(Rejected(source, message.key, orjson.dumps(item), reason))


def _batch_items(value: bytes) -> list[object] | str:
    """The elements of a batch message, or the reason it cannot be read at all."""
    if len(value) > MAX_BATCH_BYTES:
        return f"batch message is {len(value)} bytes, above {MAX_BATCH_BYTES}"
    try:
        items = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return f"not valid JSON: {exc}"
    if not isinstance(items, list) or len(items) > MAX_BATCH_ITEMS:
        return f"a batch message is a JSON array of at most {MAX_BATCH_ITEMS} transactions"
    return list(items)
