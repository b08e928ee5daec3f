"""Stamps a batch of transaction events exactly once: a fixed number of statements per batch.

The order inside the transaction is what makes it safe under redelivery and under two
workers holding the same events during a rebalance:

1. record the event ids (`INSERT ... ON CONFLICT`): a concurrent copy of the same event
   waits here for the first to commit, then sees it as a duplicate;
2. lock the collections the batch touches, in id order (no deadlock between batches);
3. read their stamps, parked undos and day counts under those locks;
4. plan the effects in pure code (`ledger.batch`), then write them in bulk.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.batch import KnownStamp, LedgerView, Parked, Plan, local_day, plan_batch
from ledger.domain import CollectionState, NewStamp, RewardTerms
from ledger.ids import new_id
from ledger.outbox import enqueue_events
from ledger.outbox_events import batch_events
from rules import CardTransaction, ProgramDefinition


@dataclass(frozen=True)
class Source:
    """Where a message came from; `item` is its place inside a batch message, or -1."""

    topic: str
    partition: int
    offset: int
    item: int = -1


@dataclass(frozen=True)
class Incoming:
    """A valid transaction event with the programs the matcher found for it."""

    tx: CardTransaction
    matched: tuple[str, ...]
    source: Source


@dataclass(frozen=True)
class Rejected:
    """A message that failed validation: it goes to the dead letters, bytes and reason kept."""

    source: Source
    key: bytes | None
    value: bytes
    reason: str


@dataclass(frozen=True)
class BatchOutcome:
    """What one batch did, for the accounting `|input| == processed + duplicates + dead`."""

    processed: int
    duplicates: int
    dead_lettered: int
    stamps: int
    voids: int
    rewards: int
    parked: int


async def apply_batch(
    conn: AsyncConnection,
    incoming: Sequence[Incoming],
    rejected: Sequence[Rejected],
    programs: Mapping[str, ProgramDefinition],
    now: datetime,
) -> BatchOutcome:
    """Apply one batch inside the caller's transaction; safe to repeat after a crash."""
    new = await _record_events(conn, incoming)
    await _dead_letter(conn, rejected)
    events = [(item.tx, item.matched) for item in incoming if item.tx.id in new]
    view = await _read_view(conn, events, programs)
    plan = plan_batch(events, view, programs)
    await _write_plan(conn, plan, view, now)
    return BatchOutcome(
        processed=len(new),
        duplicates=len(incoming) - len(new),
        dead_lettered=len(rejected),
        stamps=len(plan.stamps),
        voids=len(plan.voids),
        rewards=len(plan.rewards),
        parked=len(plan.parked),
    )


async def _record_events(conn: AsyncConnection, incoming: Sequence[Incoming]) -> set[str]:
    """Insert every event id, counting deliveries; the ids that were new come back."""
    first = {item.tx.id: item for item in reversed(incoming)}
    copies = Counter(item.tx.id for item in incoming)
    rows = sorted(first.values(), key=lambda item: item.tx.id)
    if not rows:
        return set()
    result = await conn.execute(
        text(
            """
            INSERT INTO processed_transactions AS p
              (transaction_id, purchase_id, type, member_id,
               source_topic, source_partition, source_offset, deliveries)
            SELECT * FROM json_to_recordset(CAST(:rows AS json)) AS r(
                id text, purchase text, type text, member text, topic text, partition int,
                "offset" bigint, copies int)
            ON CONFLICT (transaction_id)
            DO UPDATE SET deliveries = p.deliveries + EXCLUDED.deliveries
            RETURNING transaction_id, (xmax = 0) AS inserted
            """
        ),
        {
            "rows": as_json(
                [
                    {
                        "id": r.tx.id,
                        "purchase": r.tx.purchase_id,
                        "type": r.tx.type,
                        "member": r.tx.member_id,
                        "topic": r.source.topic,
                        "partition": r.source.partition,
                        "offset": r.source.offset,
                        "copies": copies[r.tx.id],
                    }
                    for r in rows
                ]
            )
        },
    )
    return {row.transaction_id for row in result if row.inserted}


async def _dead_letter(conn: AsyncConnection, rejected: Sequence[Rejected]) -> None:
    if not rejected:
        return
    await conn.execute(
        text(
            """
            INSERT INTO dead_letters
              (source_topic, source_partition, source_offset, item, key, value, reason)
            SELECT * FROM unnest(CAST(:topics AS text[]), CAST(:partitions AS int[]),
                                 CAST(:offsets AS bigint[]), CAST(:items AS int[]),
                                 CAST(:keys AS bytea[]), CAST(:values AS bytea[]),
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
            "values": [r.value for r in rejected],
            "reasons": [r.reason for r in rejected],
        },
    )


Events = Sequence[tuple[CardTransaction, Sequence[str]]]


def as_json(value: object) -> str:
    """A parameter as one JSON text: orjson writes it far faster than psycopg dumps arrays."""
    return orjson.dumps(value).decode()


async def _read_view(
    conn: AsyncConnection, events: Events, programs: Mapping[str, ProgramDefinition]
) -> LedgerView:
    pairs = {(p, tx.member_id) for tx, matched in events if tx.stamps for p in matched}
    undoers = {tx.member_id for tx, _ in events if not tx.stamps}
    if not pairs and not undoers:
        return LedgerView({}, [], set(), [], {})
    collections = await _lock_collections(conn, pairs, undoers, programs)
    keys = {k for tx, _ in events for k in (tx.id, tx.purchase_id, tx.original_id) if k}
    ids = [c.id for c in collections.values()]
    originals = {tx.original_id for tx, _ in events if tx.original_id}
    purchasers = {tx.member_id for tx, _ in events if tx.stamps}
    return LedgerView(
        collections=collections,
        stamps=await _stamps(conn, ids, keys),
        processed_originals=await _processed(conn, originals, {tx.id for tx, _ in events}),
        parked=await _parked(conn, purchasers, keys),
        day_counts=await _day_counts(conn, events, collections, programs),
    )


async def _lock_collections(
    conn: AsyncConnection,
    pairs: set[tuple[str, str]],
    undoers: set[str],
    programs: Mapping[str, ProgramDefinition],
) -> dict[tuple[str, str], CollectionState]:
    result = await conn.execute(
        text(
            """
            SELECT id, program_id, member_id, created_at, unredeemed_purchases,
                   owed_stamps, cycle
            FROM stamp_collections
            WHERE id IN (
                SELECT c.id FROM json_to_recordset(CAST(:pairs AS json))
                    AS r(program text, member text)
                JOIN stamp_collections c ON c.program_id = r.program AND c.member_id = r.member
                UNION ALL
                SELECT c.id FROM stamp_collections c
                WHERE c.member_id = ANY(ARRAY(SELECT json_array_elements_text(
                    CAST(:undoers AS json))))
            )
            ORDER BY id
            FOR UPDATE
            """
        ),
        {
            "pairs": as_json([{"program": p, "member": m} for p, m in sorted(pairs)]),
            "undoers": as_json(sorted(undoers)),
        },
    )
    collections: dict[tuple[str, str], CollectionState] = {}
    for row in result:
        # `programs` holds paused and archived programs too: an undo still counts there.
        program = programs.get(row.program_id)
        if program is None:
            continue
        collections[(row.program_id, row.member_id)] = CollectionState(
            id=row.id,
            program_id=row.program_id,
            member_id=row.member_id,
            enrolled_at=row.created_at,
            threshold=program.qualifying_threshold,
            terms=RewardTerms.of(program),
            progress=row.unredeemed_purchases - row.owed_stamps,
            cycle=row.cycle,
        )
    return collections


async def _stamps(
    conn: AsyncConnection, collection_ids: list[str], keys: set[str]
) -> list[KnownStamp]:
    if not collection_ids or not keys:
        return []
    result = await conn.execute(
        text(
            """
            SELECT id, collection_id, purchase_id, transaction_id, voided_at IS NOT NULL AS voided
            FROM stamps
            WHERE collection_id = ANY(ARRAY(
                SELECT json_array_elements_text(CAST(:collections AS json))))
              AND (purchase_id = ANY(ARRAY(
                  SELECT json_array_elements_text(CAST(:keys AS json))))
                   OR transaction_id = ANY(ARRAY(
                       SELECT json_array_elements_text(CAST(:keys AS json)))))
            ORDER BY id
            """
        ),
        {"collections": as_json(collection_ids), "keys": as_json(sorted(keys))},
    )
    return [
        KnownStamp(r.id, r.collection_id, r.purchase_id, r.transaction_id, r.voided) for r in result
    ]


async def _processed(conn: AsyncConnection, originals: set[str], this_batch: set[str]) -> set[str]:
    """Which undone ids name an event processed before this batch (so nothing to park)."""
    if not originals:
        return set()
    result = await conn.execute(
        text(
            """
            SELECT transaction_id, purchase_id FROM processed_transactions
            WHERE (transaction_id = ANY(ARRAY(
                SELECT json_array_elements_text(CAST(:ids AS json))))
                   OR purchase_id = ANY(ARRAY(
                       SELECT json_array_elements_text(CAST(:ids AS json)))))
              AND NOT transaction_id = ANY(ARRAY(
                  SELECT json_array_elements_text(CAST(:batch AS json))))
            """
        ),
        {"ids": as_json(sorted(originals)), "batch": as_json(sorted(this_batch))},
    )
    return {key for row in result for key in (row.transaction_id, row.purchase_id)} & originals


async def _parked(conn: AsyncConnection, members: set[str], keys: set[str]) -> list[Parked]:
    if not members:
        return []
    result = await conn.execute(
        text(
            """
            SELECT transaction_id, original_id, member_id FROM pending_undos
            WHERE applied_at IS NULL
              AND member_id = ANY(ARRAY(
                  SELECT json_array_elements_text(CAST(:members AS json))))
              AND original_id = ANY(ARRAY(
                  SELECT json_array_elements_text(CAST(:keys AS json))))
            ORDER BY received_at, transaction_id
            """
        ),
        {"members": as_json(sorted(members)), "keys": as_json(sorted(keys))},
    )
    return [Parked(r.transaction_id, r.original_id, r.member_id) for r in result]


async def _day_counts(
    conn: AsyncConnection,
    events: Events,
    collections: Mapping[tuple[str, str], CollectionState],
    programs: Mapping[str, ProgramDefinition],
) -> dict[tuple[str, date], int]:
    """Stamps not voided per collection and local day, for the capped programs in the batch."""
    windows: dict[tuple[str, date], tuple[datetime, datetime]] = {}
    for tx, matched in events:
        for program_id in matched:
            program = programs[program_id]
            collection = collections.get((program_id, tx.member_id))
            if program.rules.daily_cap_per_member is None or collection is None:
                continue
            day = local_day(program, tx)
            windows[(collection.id, day)] = _day_bounds(day, program.rules.timezone)
    if not windows:
        return {}
    keys = list(windows)
    result = await conn.execute(
        text(
            """
            SELECT w.n, count(s.id) AS stamps
            FROM unnest(CAST(:collections AS text[]), CAST(:starts AS timestamptz[]),
                        CAST(:ends AS timestamptz[])) WITH ORDINALITY AS w(c, s, e, n)
            LEFT JOIN stamps s ON s.collection_id = w.c AND s.occurred_at >= w.s
                 AND s.occurred_at < w.e AND s.voided_at IS NULL
            GROUP BY w.n
            """
        ),
        {
            "collections": [c for c, _ in keys],
            "starts": [windows[k][0] for k in keys],
            "ends": [windows[k][1] for k in keys],
        },
    )
    return {keys[row.n - 1]: row.stamps for row in result}


def _day_bounds(day: date, timezone: str) -> tuple[datetime, datetime]:
    zone = ZoneInfo(timezone)
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    following = day + timedelta(days=1)
    return start, datetime(following.year, following.month, following.day, tzinfo=zone)


async def _write_plan(conn: AsyncConnection, plan: Plan, view: LedgerView, now: datetime) -> None:
    await _insert_stamps(conn, plan, now)
    await _void_stamps(conn, plan, now)
    await _update_collections(conn, plan.changed_collections(view), now)
    rewards = await _insert_rewards(conn, plan)
    await _park(conn, plan, now)
    await enqueue_events(conn, batch_events(plan, view, rewards, now))


async def _insert_stamps(conn: AsyncConnection, plan: Plan, now: datetime) -> None:
    if not plan.stamps:
        return
    await conn.execute(
        text(
            """
            INSERT INTO stamps (collection_id, purchase_id, transaction_id, cycle, amount,
                                currency, merchant_id, merchant_name, occurred_at,
                                voided_at, void_transaction_id)
            SELECT c, p, t, cy, a, cu, mi, mn, o, CASE WHEN v IS NULL THEN NULL ELSE :now END, v
            FROM json_to_recordset(CAST(:rows AS json)) AS u(
                c text, p text, t text, cy int, a bigint, cu text, mi text, mn text,
                o timestamptz, v text)
            """
        ),
        {"now": now, "rows": as_json([_stamp_row(x) for x in plan.stamps])},
    )


def _stamp_row(stamp: NewStamp) -> dict[str, object]:
    tx = stamp.purchase
    return {
        "c": stamp.collection_id,
        "p": tx.purchase_id,
        "t": tx.id,
        "cy": stamp.cycle,
        "a": tx.amount,
        "cu": tx.currency,
        "mi": tx.merchant.id,
        "mn": tx.merchant.name,
        "o": tx.occurred_at,
        "v": stamp.voided_by,
    }


async def _void_stamps(conn: AsyncConnection, plan: Plan, now: datetime) -> None:
    voids = [v for v in plan.voids if v.stamp_id is not None]
    if not voids:
        return
    await conn.execute(
        text(
            """
            UPDATE stamps s SET voided_at = :now, void_transaction_id = u.undo
            FROM unnest(CAST(:ids AS bigint[]), CAST(:undos AS text[])) AS u(id, undo)
            WHERE s.id = u.id AND s.voided_at IS NULL
            """
        ),
        {"now": now, "ids": [v.stamp_id for v in voids], "undos": [v.undo.id for v in voids]},
    )


async def _update_collections(
    conn: AsyncConnection, changed: list[CollectionState], now: datetime
) -> None:
    if not changed:
        return
    await conn.execute(
        text(
            """
            UPDATE stamp_collections c
            SET unredeemed_purchases = u.unredeemed, owed_stamps = u.owed, cycle = u.cycle,
                updated_at = :now
            FROM json_to_recordset(CAST(:rows AS json))
                 AS u(id text, unredeemed int, owed int, cycle int)
            WHERE c.id = u.id
            """
        ),
        {
            "now": now,
            "rows": as_json(
                [
                    {
                        "id": c.id,
                        "unredeemed": c.unredeemed_purchases,
                        "owed": c.owed_stamps,
                        "cycle": c.cycle,
                    }
                    for c in changed
                ]
            ),
        },
    )


async def _insert_rewards(conn: AsyncConnection, plan: Plan) -> list[str]:
    """Insert the rewards; their ids come back in plan order."""
    if not plan.rewards:
        return []
    ids = [new_id("rw") for _ in plan.rewards]
    r = plan.rewards
    result = await conn.execute(
        text(
            """
            INSERT INTO rewards (id, collection_id, cycle, type, amount, currency,
                                 transaction_id, purchase_id)
            SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:c AS text[]), CAST(:cy AS int[]),
                                 CAST(:ty AS text[]), CAST(:a AS bigint[]),
                                 CAST(:cu AS text[]), CAST(:t AS text[]), CAST(:p AS text[]))
            RETURNING id
            """
        ),
        {
            "ids": ids,
            "c": [x.collection_id for x in r],
            "cy": [x.cycle for x in r],
            "ty": [x.type for x in r],
            "a": [x.amount for x in r],
            "cu": [x.currency for x in r],
            "t": [x.purchase.id for x in r],
            "p": [x.purchase.purchase_id for x in r],
        },
    )
    assert len(result.all()) == len(ids)
    return ids


async def _park(conn: AsyncConnection, plan: Plan, now: datetime) -> None:
    if plan.parked:
        await conn.execute(
            text(
                """
                INSERT INTO pending_undos (transaction_id, original_id, member_id, type)
                SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:originals AS text[]),
                                     CAST(:members AS text[]), CAST(:types AS text[]))
                ON CONFLICT (transaction_id) DO NOTHING
                """
            ),
            {
                "ids": [tx.id for tx in plan.parked],
                "originals": [tx.original_id for tx in plan.parked],
                "members": [tx.member_id for tx in plan.parked],
                "types": [str(tx.type) for tx in plan.parked],
            },
        )
    if plan.unparked:
        await conn.execute(
            text(
                "UPDATE pending_undos SET applied_at = :now "
                "WHERE transaction_id = ANY(CAST(:ids AS text[]))"
            ),
            {"now": now, "ids": plan.unparked},
        )
