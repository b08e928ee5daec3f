"""Reads what the planner sees of the ledger for one batch, under the locks of its collections.

`ledger.scope` says which rows; this module fetches them in five statements whatever the size
of the batch: the lock, the purchase events, the stamps, the days, the undos.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.batch import Incoming
from ledger.domain import StampStatus, Tally, UndoFact
from ledger.model import CollectionView, DayKey, LedgerView, PurchaseEventRow, StampRow
from ledger.outbox import subscribed_types
from ledger.scope import (
    LockKeys,
    PurchaseKeys,
    day_keys,
    lock_keys,
    name_keys,
    purchase_keys,
)
from ledger.sql import as_json, day_bounds
from rules import ProgramDefinition

Programs = Mapping[str, ProgramDefinition]


async def read_view(
    conn: AsyncConnection, incoming: Sequence[Incoming], programs: Programs
) -> LedgerView:
    locks = lock_keys(incoming)
    if not locks:
        return LedgerView(announce=frozenset())
    collections = await _lock_collections(conn, locks, programs)
    events = await _purchase_events(conn, name_keys(incoming))
    keys = purchase_keys(incoming, events)
    stamps = await _stamps(conn, [c.id for c in collections], keys)
    days = day_keys(incoming, collections, stamps, programs)
    day_live, capped = await _days(conn, days, programs, collections)
    known = {s.key for s in stamps}
    return LedgerView(
        collections=tuple(collections),
        stamps=(*stamps, *(s for s in capped if s.key not in known)),
        purchase_events=tuple(events),
        undos=tuple(await _undos(conn, keys)),
        day_live=day_live,
        announce=await subscribed_types(conn),
    )


# Each lookup is driven by an index from the batch's keys, one key at a time (a LATERAL
# subquery with a LIMIT is never flattened into a join the planner might hash over whole
# tables, as it does while the tables' statistics still say they are small); the ids come
# first, so the locking scan is by primary key.
_LOCK = text(
    """
    SELECT id, program_id, member_id, created_at, unredeemed_purchases, owed_stamps, cycle,
           unenrolled_at IS NULL AS stamping
    FROM stamp_collections
    WHERE id = ANY(ARRAY(
        SELECT c.id FROM json_to_recordset(CAST(:pairs AS json)) AS r(p text, m text)
        CROSS JOIN LATERAL (
            SELECT id FROM stamp_collections
            WHERE program_id = r.p AND member_id = r.m AND unenrolled_at IS NULL LIMIT 1
        ) c
        UNION
        SELECT s.collection_id FROM json_to_recordset(CAST(:purchases AS json)) AS r(m text, p text)
        CROSS JOIN LATERAL (
            SELECT s.collection_id FROM stamps s
            WHERE s.purchase_id = r.p
              AND (SELECT member_id FROM stamp_collections WHERE id = s.collection_id) = r.m
            LIMIT 1000
        ) s
        UNION
        SELECT c.id FROM stamp_collections c
        WHERE c.member_id = ANY(ARRAY(SELECT json_array_elements_text(CAST(:members AS json))))
    ))
    ORDER BY id
    FOR UPDATE
    """
)


async def _lock_collections(
    conn: AsyncConnection, locks: LockKeys, programs: Programs
) -> list[CollectionView]:
    result = await conn.execute(
        _LOCK,
        {
            "pairs": as_json([{"p": p, "m": m} for p, m in sorted(locks.pairs)]),
            "purchases": as_json([{"m": m, "p": p} for m, p in sorted(locks.purchases)]),
            "members": as_json(sorted(locks.members)),
        },
    )
    # `programs` holds paused and archived programs too: an undo still counts there.
    # An unenrolled collection is locked only for its history (a purchase it holds, an undo).
    return [
        CollectionView(c.id, c.program_id, c.member_id, c.created_at, _tally(c), c.stamping)
        for c in result
        if c.program_id in programs
    ]


def _tally(row: Row[Any]) -> Tally:
    return Tally(row.unredeemed_purchases - row.owed_stamps, row.cycle)


async def _purchase_events(
    conn: AsyncConnection, names: Iterable[tuple[str, str]]
) -> list[PurchaseEventRow]:
    """The remembered events of every purchase that one of `names` (member, id) is or belongs to."""
    result = await conn.execute(
        text(
            """
            WITH n AS (
                SELECT * FROM json_to_recordset(CAST(:names AS json)) AS n(m text, id text)
            ), p AS (
                SELECT e.member_id, e.purchase_id FROM n CROSS JOIN LATERAL (
                    SELECT member_id, purchase_id FROM purchase_events
                    WHERE id = n.id AND member_id = n.m LIMIT 1
                ) e
                UNION
                SELECT e.member_id, e.purchase_id FROM n CROSS JOIN LATERAL (
                    SELECT member_id, purchase_id FROM purchase_events
                    WHERE member_id = n.m AND purchase_id = n.id LIMIT 1
                ) e
            )
            SELECT e.id, e.purchase_id, e.member_id, e.occurred_at FROM p CROSS JOIN LATERAL (
                SELECT id, purchase_id, member_id, occurred_at FROM purchase_events
                WHERE member_id = p.member_id AND purchase_id = p.purchase_id LIMIT 1000
            ) e
            """
        ),
        {"names": as_json([{"m": m, "id": i} for m, i in sorted(names)])},
    )
    return [PurchaseEventRow(r.id, r.purchase_id, r.member_id, r.occurred_at) for r in result]


STAMP_COLUMNS = """s.id, s.collection_id, s.purchase_id, s.transaction_id, s.cycle, s.amount,
    s.currency, s.merchant_id, s.merchant_name, s.occurred_at, s.status, s.void_transaction_id"""


def stamp_row(r: Row[Any]) -> StampRow:
    return StampRow(
        collection_id=r.collection_id,
        purchase_id=r.purchase_id,
        transaction_id=r.transaction_id,
        cycle=r.cycle,
        amount=r.amount,
        currency=r.currency,
        merchant_id=r.merchant_id,
        merchant_name=r.merchant_name,
        occurred_at=r.occurred_at,
        status=StampStatus(r.status),
        void_transaction_id=r.void_transaction_id,
        id=r.id,
    )


async def _stamps(
    conn: AsyncConnection, collection_ids: list[str], keys: PurchaseKeys
) -> list[StampRow]:
    if not collection_ids:
        return []
    result = await conn.execute(
        text(
            f"""
            SELECT {STAMP_COLUMNS}
            FROM json_array_elements_text(CAST(:purchases AS json)) AS p(purchase)
            CROSS JOIN LATERAL (
                -- The batch's collections inside the LIMIT: a purchase id shared by many
                -- members' stamps must not crowd out the stamps of this batch's.
                SELECT * FROM stamps WHERE purchase_id = p.purchase
                  AND collection_id = ANY(CAST(:collections AS text[]))
                LIMIT 1000
            ) s
            ORDER BY s.id
            """  # noqa: S608 (constant columns)
        ),
        {"collections": collection_ids, "purchases": as_json(sorted(keys.purchases))},
    )
    return [stamp_row(row) for row in result]


async def _undos(conn: AsyncConnection, keys: PurchaseKeys) -> list[UndoFact]:
    if not keys.names and not keys.undo_ids:
        return []
    result = await conn.execute(
        text(
            """
            SELECT u.id, u.original_id, u.member_id, u.type, u.amount, u.currency
            FROM json_to_recordset(CAST(:names AS json)) AS n(m text, id text)
            CROSS JOIN LATERAL (
                SELECT * FROM undos WHERE member_id = n.m AND original_id = n.id LIMIT 1000
            ) u
            UNION
            SELECT u.id, u.original_id, u.member_id, u.type, u.amount, u.currency
            FROM json_to_recordset(CAST(:ids AS json)) AS k(m text, id text)
            JOIN undos u ON u.member_id = k.m AND u.id = k.id
            """
        ),
        {
            "names": as_json([{"m": m, "id": i} for m, i in sorted(keys.names)]),
            "ids": as_json([{"m": m, "id": i} for m, i in sorted(keys.undo_ids)]),
        },
    )
    return [
        UndoFact(r.id, r.original_id, r.member_id, r.type, r.amount, r.currency) for r in result
    ]


async def _days(
    conn: AsyncConnection,
    days: set[DayKey],
    programs: Programs,
    collections: Sequence[CollectionView],
) -> tuple[dict[DayKey, int], list[StampRow]]:
    """Live stamps counted, and capped stamps read, for each (collection, local day)."""
    if not days:
        return {}, []
    zone = {c.id: programs[c.program_id].rules.timezone for c in collections}
    keys = sorted(days, key=str)
    windows = [day_bounds(day, zone[cid]) for cid, day in keys]
    result = await conn.execute(
        text(
            f"""
            SELECT w.n, {STAMP_COLUMNS}
            FROM unnest(CAST(:collections AS text[]), CAST(:starts AS timestamptz[]),
                        CAST(:ends AS timestamptz[])) WITH ORDINALITY AS w(c, s, e, n)
            JOIN stamps s ON s.collection_id = w.c AND s.occurred_at >= w.s
                 AND s.occurred_at < w.e AND s.status IN ('live', 'capped')
            """  # noqa: S608 (constant columns)
        ),
        {
            "collections": [cid for cid, _ in keys],
            "starts": [start for start, _ in windows],
            "ends": [end for _, end in windows],
        },
    )
    live = dict.fromkeys(keys, 0)
    capped: list[StampRow] = []
    for row in result:
        stamp = stamp_row(row)
        if stamp.status is StampStatus.LIVE:
            live[keys[row.n - 1]] += 1
        else:
            capped.append(stamp)
    return live, capped
