"""Adjusts a collection's count for support staff: stamps added or taken away, with why.

An adjustment is a ledger row (`stamp_adjustments`) and changes the count by the stamping
rules (`ledger.thresholds.adjust`), in one transaction:

1. the programs lock is taken shared, as a worker's batch takes it, so a program change
   and an adjustment take turns and the adjustment counts by the program as it stands;
   then the collection is locked `FOR UPDATE`, as a batch locks it, so an adjustment and a
   batch on the same collection take turns and each sees the other's count;
2. under the lock, an adjustment already made with the same idempotency key on the
   collection is the answer (the same delta and reason) or a refusal (another body): a
   retry changes nothing, however often it is sent;
3. the adjustment, the new count, the rewards it completes and their webhook events are
   written together. The unique key on (collection, idempotency key) refuses a second row
   should the lock ever be bypassed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.catalog import DEFINITION_COLUMNS, definition_from_row, share_programs
from ledger.domain import Tally, reward_id
from ledger.errors import NotFound
from ledger.idempotency import IdempotencyKeyReused
from ledger.ids import new_id
from ledger.model import CollectionView
from ledger.outbox import enqueue_events, subscribed_types
from ledger.schema import StampAdjustment
from ledger.stamping import insert_rewards, update_collections
from ledger.statements import Statements
from ledger.thresholds import Adjustment, adjust, check_adjustment
from ledger.views import STAMP_COLUMNS, stamp_row


@dataclass(frozen=True)
class AdjustmentRecord:
    """An adjustment as made, with the collection's counters right after it."""

    id: str
    collection_id: str
    delta: int
    reason: str
    api_key_id: str | None
    cycle: int
    unredeemed_purchases: int
    owed_stamps: int
    reward_ids: tuple[str, ...]
    created_at: datetime
    replayed: bool = False


def request_digest(delta: int, reason: str) -> str:
    return hashlib.sha256(f"{delta}\x00{reason}".encode()).hexdigest()


_PROGRAM = ", ".join(f"p.{column}" for column in DEFINITION_COLUMNS)
_LOCK = text(
    f"""
    SELECT c.id AS collection_id, c.program_id, c.member_id, c.created_at AS enrolled_at,
           c.unredeemed_purchases, c.owed_stamps, c.cycle, {_PROGRAM}
    FROM stamp_collections c JOIN programs p ON p.id = c.program_id
    WHERE c.id = :collection_id
    FOR UPDATE OF c
    """  # noqa: S608 (constant columns)
)
_MADE = text(
    """
    SELECT id, collection_id, delta, reason, api_key_id, cycle, unredeemed_purchases,
           owed_stamps, rewards, created_at, request_sha256
    FROM stamp_adjustments WHERE collection_id = :collection_id AND idempotency_key = :key
    """
)
_LATEST_LIVE = text(
    f"""
    SELECT {STAMP_COLUMNS} FROM stamps s
    WHERE s.collection_id = :collection_id AND s.status = 'live'
    ORDER BY s.id DESC LIMIT 1
    """  # noqa: S608 (constant columns)
)
_INSERT = text(
    """
    INSERT INTO stamp_adjustments (id, collection_id, delta, reason, idempotency_key,
                                   request_sha256, api_key_id, cycle, unredeemed_purchases,
                                   owed_stamps, rewards)
    VALUES (:id, :collection_id, :delta, :reason, :key, :digest, :api_key_id, :cycle,
            :unredeemed_purchases, :owed_stamps, :rewards)
    RETURNING created_at
    """
)


async def adjust_collection(
    conn: AsyncConnection,
    collection_id: str,
    delta: int,
    reason: str,
    idempotency_key: str,
    api_key_id: str | None,
    now: datetime,
) -> AdjustmentRecord:
    """Add (`delta` > 0) or take away stamps, exactly once per idempotency key.

    Raises ValueError for a delta or reason out of bounds, NotFound for an unknown
    collection, IdempotencyKeyReused for a key used with another delta or reason, and
    AdjustmentRefused for an addition completing a cycle with no purchase to pay for.
    """
    check_adjustment(delta, reason)
    # Before the program is read: a change committing meanwhile (a lowered threshold, which
    # settles collections) would otherwise leave this count judged by the threshold it replaced.
    await share_programs(conn)
    locked = (await conn.execute(_LOCK, {"collection_id": collection_id})).mappings().first()
    if locked is None:
        raise NotFound("stamp collection", collection_id)
    digest = request_digest(delta, reason)
    names = {"collection_id": collection_id, "key": idempotency_key}
    made = (await conn.execute(_MADE, names)).mappings().first()
    if made is not None:
        if made["request_sha256"] != digest:
            raise IdempotencyKeyReused(
                "this idempotency key was used with another delta or reason; use a new key"
            )
        return _record(made, replayed=True)
    announce = await subscribed_types(conn)
    latest = (await conn.execute(_LATEST_LIVE, {"collection_id": collection_id})).first()
    adjustment = Adjustment(new_id("adj"), collection_id, delta, reason)
    settled = adjust(
        definition_from_row(locked),
        _view(locked),
        adjustment,
        stamp_row(latest) if latest is not None else None,
        now,
        announce,
    )
    tally = settled.collection.tally
    values = {
        **names,
        "id": adjustment.id,
        "delta": delta,
        "reason": reason,
        "digest": digest,
        "api_key_id": api_key_id,
        "cycle": tally.cycle,
        "unredeemed_purchases": tally.unredeemed_purchases,
        "owed_stamps": tally.owed_stamps,
        "rewards": len(settled.rewards),
    }
    created_at = (await conn.execute(_INSERT, values)).scalar_one()
    await update_collections(conn, [settled.collection], now)
    await insert_rewards(conn, settled.rewards)
    await enqueue_events(conn, settled.events, announce)
    return _record({**values, "created_at": created_at}, replayed=False)


def _view(row: Mapping[Any, Any]) -> CollectionView:
    tally = Tally(row["unredeemed_purchases"] - row["owed_stamps"], row["cycle"])
    return CollectionView(
        row["collection_id"], row["program_id"], row["member_id"], row["enrolled_at"], tally
    )


def _record(row: Mapping[Any, Any], *, replayed: bool) -> AdjustmentRecord:
    cycle, rewards = row["cycle"], row["rewards"]
    return AdjustmentRecord(
        id=row["id"],
        collection_id=row["collection_id"],
        delta=row["delta"],
        reason=row["reason"],
        api_key_id=row["api_key_id"],
        cycle=cycle,
        unredeemed_purchases=row["unredeemed_purchases"],
        owed_stamps=row["owed_stamps"],
        reward_ids=tuple(reward_id(row["collection_id"], c) for c in range(cycle - rewards, cycle)),
        created_at=row["created_at"],
        replayed=replayed,
    )


# The adjustments shown beside one page of a collection's stamp history: those made after
# the previous page's last stamp, up to this page's last (to the end on the last page).
MAX_BESIDE_A_PAGE = 1000
_BESIDE = (
    select(
        StampAdjustment.id,
        StampAdjustment.collection_id,
        StampAdjustment.delta,
        StampAdjustment.reason,
        StampAdjustment.api_key_id,
        StampAdjustment.cycle,
        StampAdjustment.unredeemed_purchases,
        StampAdjustment.owed_stamps,
        StampAdjustment.rewards,
        StampAdjustment.created_at,
    )
    .where(
        StampAdjustment.collection_id == bindparam("collection_id"),
        StampAdjustment.created_at > bindparam("since", type_=DateTime(timezone=True)),
        StampAdjustment.created_at <= bindparam("until", type_=DateTime(timezone=True)),
    )
    .order_by(StampAdjustment.created_at, StampAdjustment.id)
    .limit(MAX_BESIDE_A_PAGE)
)
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)


async def adjustments_beside(
    db: Statements,
    collection_id: str,
    since: datetime | None,
    until: datetime | None,
) -> list[AdjustmentRecord]:
    """The collection's adjustments made in (since, until], oldest first; None: unbounded."""
    params = {
        "collection_id": collection_id,
        "since": since or _EARLIEST,
        "until": until or _LATEST,
    }
    return [_record(row, replayed=False) for row in await db.rows(_BESIDE, params)]
