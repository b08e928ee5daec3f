"""Settles a program's collections when its threshold is lowered, in the caller's transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.domain import Tally
from ledger.model import CollectionView
from ledger.outbox import enqueue_events
from ledger.stamping import insert_rewards, update_collections
from ledger.thresholds import Payable, settle
from ledger.views import STAMP_COLUMNS, stamp_row
from rules import ProgramDefinition


async def settle_program(conn: AsyncConnection, program: ProgramDefinition, now: datetime) -> int:
    """Reward every collection of `program` whose count reaches its threshold; how many."""
    collections = await _reaching(conn, program)
    if not collections:
        return 0
    payable = await _payable(conn, collections)
    settled = [settle(program, c, payable.get(c.id, []), now) for c in collections]
    await update_collections(conn, [s.collection for s in settled], now)
    await insert_rewards(conn, [r for s in settled for r in s.rewards])
    await enqueue_events(conn, [e for s in settled for e in s.events])
    return len(settled)


async def _reaching(conn: AsyncConnection, program: ProgramDefinition) -> list[CollectionView]:
    result = await conn.execute(
        text(
            """
            SELECT id, program_id, member_id, created_at, unredeemed_purchases, owed_stamps,
                   cycle
            FROM stamp_collections
            WHERE program_id = :program AND unredeemed_purchases >= :threshold
            ORDER BY id
            FOR UPDATE
            """
        ),
        {"program": program.id, "threshold": program.qualifying_threshold},
    )
    return [
        CollectionView(
            r.id, r.program_id, r.member_id, r.created_at, Tally(r.unredeemed_purchases, r.cycle)
        )
        for r in result
    ]


async def _payable(
    conn: AsyncConnection, collections: list[CollectionView]
) -> dict[str, list[Payable]]:
    """Each collection's live stamps of its current cycle that no reward of it names, with
    what partial refunds of each purchase gave back (in its currency)."""
    result = await conn.execute(
        text(
            f"""
            SELECT {STAMP_COLUMNS}, CAST(coalesce((
                SELECT sum(u.amount) FROM undos u
                WHERE u.member_id = c.member_id AND u.currency = s.currency
                  AND u.type = 'refund'
                  AND (u.original_id = s.purchase_id OR u.original_id IN (
                      SELECT e.id FROM purchase_events e
                      WHERE e.member_id = c.member_id AND e.purchase_id = s.purchase_id))
            ), 0) AS bigint) AS refunded
            FROM stamp_collections c
            JOIN stamps s ON s.collection_id = c.id AND s.status = 'live' AND s.cycle = c.cycle
            WHERE c.id = ANY(CAST(:ids AS text[]))
              AND NOT EXISTS (SELECT 1 FROM rewards r
                              WHERE r.collection_id = c.id AND r.purchase_id = s.purchase_id)
            ORDER BY s.id
            """  # noqa: S608 (constant columns)
        ),
        {"ids": [c.id for c in collections]},
    )
    payable: dict[str, list[Payable]] = {}
    for row in result:
        payable.setdefault(row.collection_id, []).append(Payable(stamp_row(row), row.refunded))
    return payable
