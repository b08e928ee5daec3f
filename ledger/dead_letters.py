"""Dead letters: messages that could not be applied, kept with their bytes, place and reason.

The ledger keeps a message whole up to `KEPT_BYTES` (larger ones, which only a broker
configured for them delivers, keep that much), with the size and SHA-256 of the whole. The
relay puts a bounded prefix on the dead-letter topic, so the broker can always take it;
`autostamp dead-letters show` gives what the ledger holds, and `replay` puts it back on the
transactions topic once the cause is fixed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.batch import Rejected
from ledger.errors import NotFound
from ledger.redaction import redact

KEPT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class DeadLetter:
    """A refused message, with where it came from and why."""

    id: int
    source_topic: str
    source_partition: int
    source_offset: int
    item: int
    key: bytes | None
    value: bytes
    size: int
    sha256: str
    reason: str
    created_at: datetime
    published_at: datetime | None
    publish_error: str | None
    replayed_at: datetime | None

    @property
    def whole(self) -> bool:
        """Whether `value` is the whole message (else its first KEPT_BYTES)."""
        return len(self.value) == self.size


async def record_dead_letters(conn: AsyncConnection, rejected: Sequence[Rejected]) -> None:
    """Keep each refused message once, by its place in the topic and its bytes: the same
    message read again adds nothing, and another message at a place an earlier one held (in a
    topic whose offsets started again) is kept beside it."""
    if not rejected:
        return
    await conn.execute(
        text(
            """
            INSERT INTO dead_letters (source_topic, source_partition, source_offset, item, key,
                                      value, size, sha256, reason)
            SELECT * FROM unnest(CAST(:topics AS text[]), CAST(:partitions AS int[]),
                                 CAST(:offsets AS bigint[]), CAST(:items AS int[]),
                                 CAST(:keys AS bytea[]), CAST(:values AS bytea[]),
                                 CAST(:sizes AS bigint[]), CAST(:hashes AS text[]),
                                 CAST(:reasons AS text[]))
            ON CONFLICT ON CONSTRAINT uq_dead_letters_source DO NOTHING
            """
        ),
        {
            "topics": [r.source.topic for r in rejected],
            "partitions": [r.source.partition for r in rejected],
            "offsets": [r.source.offset for r in rejected],
            "items": [r.source.item for r in rejected],
            "keys": [r.key for r in rejected],
            "values": [r.value[:KEPT_BYTES] for r in rejected],
            "sizes": [len(r.value) for r in rejected],
            "hashes": [hashlib.sha256(r.value).hexdigest() for r in rejected],
            # Reasons are read by people and published in a header: redacted like a log line.
            "reasons": [redact(r.reason) for r in rejected],
        },
    )


_COLUMNS = """id, source_topic, source_partition, source_offset, item, key, value, size, sha256,
    reason, created_at, published_at, publish_error, replayed_at"""


async def claim_unpublished(conn: AsyncConnection, limit: int) -> list[DeadLetter]:
    """Dead letters not yet on the topic, locked for the caller's transaction."""
    result = await conn.execute(
        text(
            f"""
            SELECT {_COLUMNS} FROM dead_letters
            WHERE published_at IS NULL AND publish_error IS NULL
            ORDER BY id LIMIT :limit
            FOR UPDATE SKIP LOCKED
            """  # noqa: S608 (constant columns)
        ),
        {"limit": limit},
    )
    return [DeadLetter(**row._mapping) for row in result]


async def mark_published(conn: AsyncConnection, ids: Sequence[int], now: datetime) -> None:
    await conn.execute(
        text("UPDATE dead_letters SET published_at = :now WHERE id = ANY(CAST(:ids AS bigint[]))"),
        {"now": now, "ids": list(ids)},
    )


async def mark_unpublishable(conn: AsyncConnection, letter_id: int, error: str) -> None:
    """The topic refused this dead letter for good: keep why, and stop trying."""
    await conn.execute(
        text("UPDATE dead_letters SET publish_error = :error WHERE id = :id"),
        {"id": letter_id, "error": error[:1000]},
    )


async def list_dead_letters(
    conn: AsyncConnection, limit: int, before_id: int | None = None, replayed: bool | None = None
) -> list[DeadLetter]:
    """The newest dead letters first, `limit` of them, older than `before_id` if given."""
    result = await conn.execute(
        text(
            f"""
            SELECT {_COLUMNS} FROM dead_letters
            WHERE (CAST(:before AS bigint) IS NULL OR id < :before)
              AND (CAST(:replayed AS boolean) IS NULL
                   OR (replayed_at IS NOT NULL) = CAST(:replayed AS boolean))
            ORDER BY id DESC LIMIT :limit
            """  # noqa: S608 (constant columns)
        ),
        {"before": before_id, "replayed": replayed, "limit": limit},
    )
    return [DeadLetter(**row._mapping) for row in result]


async def get_dead_letter(conn: AsyncConnection, letter_id: int) -> DeadLetter:
    result = await conn.execute(
        text(f"SELECT {_COLUMNS} FROM dead_letters WHERE id = :id"),  # noqa: S608
        {"id": letter_id},
    )
    row = result.one_or_none()
    if row is None:
        raise NotFound("dead letter", str(letter_id))
    return DeadLetter(**row._mapping)


async def mark_replayed(conn: AsyncConnection, ids: Sequence[int], now: datetime) -> None:
    await conn.execute(
        text("UPDATE dead_letters SET replayed_at = :now WHERE id = ANY(CAST(:ids AS bigint[]))"),
        {"now": now, "ids": list(ids)},
    )


def replayable(
    letters: Sequence[DeadLetter], again: bool
) -> tuple[list[DeadLetter], list[tuple[DeadLetter, str]]]:
    """The letters that may go back on the topic, and the others with why not: a letter kept
    only in part cannot, and one replayed before only `again`."""
    chosen, refused = [], []
    for letter in letters:
        if not letter.whole:
            refused.append((letter, "kept only in part"))
        elif letter.replayed_at is not None and not again:
            refused.append((letter, "already replayed"))
        else:
            chosen.append(letter)
    return chosen, refused
