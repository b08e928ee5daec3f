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
    named = name_keys(incoming)
    events = await _purchase_events(conn, named.members, named.names)
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


_LOCK = text(
    """
    SELECT id, program_id, member_id, created_at, unredeemed_purchases, owed_stamps, cycle
    FROM stamp_collections
    WHERE id IN (
        SELECT c.id FROM json_to_recordset(CAST(:pairs AS json)) AS r(p text, m text)
        JOIN stamp_collections c ON c.program_id = r.p AND c.member_id = r.m
        UNION
        SELECT c.id FROM json_to_recordset(CAST(:purchases AS json)) AS r(m text, p text)
        JOIN stamp_collections c ON c.member_id = r.m
        JOIN stamps s ON s.collection_id = c.id AND s.purchase_id = r.p
        UNION
        SELECT c.id FROM stamp_collections c
        WHERE c.member_id = ANY(ARRAY(SELECT json_array_elements_text(CAST(:members AS json))))
    )
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
    return [
        CollectionView(
            id=row.id,
            program_id=row.program_id,
            member_id=row.member_id,
            enrolled_at=row.created_at,
            tally=Tally(row.unredeemed_purchases - row.owed_stamps, row.cycle),
        )
        for row in result
        if row.program_id in programs
    ]


async def _purchase_events(
    conn: AsyncConnection, members: Iterable[str], names: Iterable[str]
) -> list[PurchaseEventRow]:
    """The remembered events of every purchase that one of `names` is or belongs to."""
    result = await conn.execute(
        text(
            """
            WITH m AS (SELECT json_array_elements_text(CAST(:members AS json)) AS member),
                 n AS (SELECT json_array_elements_text(CAST(:names AS json)) AS name),
                 p AS (SELECT e.member_id, e.purchase_id FROM purchase_events e
                       WHERE e.member_id IN (SELECT member FROM m)
                         AND (e.id IN (SELECT name FROM n)
                              OR e.purchase_id IN (SELECT name FROM n)))
            SELECT e.id, e.purchase_id, e.member_id FROM purchase_events e
            JOIN (SELECT DISTINCT member_id, purchase_id FROM p) q
              ON q.member_id = e.member_id AND q.purchase_id = e.purchase_id
            """
        ),
        {"members": as_json(sorted(members)), "names": as_json(sorted(names))},
    )
    return [PurchaseEventRow(r.id, r.purchase_id, r.member_id) for r in result]


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
            SELECT {STAMP_COLUMNS} FROM stamps s
            WHERE s.collection_id = ANY(ARRAY(
                SELECT json_array_elements_text(CAST(:collections AS json))))
              AND s.purchase_id = ANY(ARRAY(
                SELECT json_array_elements_text(CAST(:purchases AS json))))
            ORDER BY s.id
            """  # noqa: S608 (constant columns)
        ),
        {"collections": as_json(collection_ids), "purchases": as_json(sorted(keys.purchases))},
    )
    return [stamp_row(row) for row in result]


async def _undos(conn: AsyncConnection, keys: PurchaseKeys) -> list[UndoFact]:
    if not keys.members:
        return []
    result = await conn.execute(
        text(
            """
            SELECT id, original_id, member_id, type, amount, currency FROM undos
            WHERE (member_id = ANY(ARRAY(SELECT json_array_elements_text(CAST(:members AS json))))
                   AND original_id = ANY(ARRAY(
                       SELECT json_array_elements_text(CAST(:names AS json)))))
               OR id = ANY(ARRAY(SELECT json_array_elements_text(CAST(:ids AS json))))
            """
        ),
        {
            "members": as_json(sorted(keys.members)),
            "names": as_json(sorted(keys.names)),
            "ids": as_json(sorted(keys.undo_ids)),
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
