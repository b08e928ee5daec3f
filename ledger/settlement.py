"""Settles a program's collections when its threshold is lowered, in the caller's transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.domain import Tally
from ledger.model import CollectionView, StampRow
from ledger.outbox import enqueue_events
from ledger.stamping import insert_rewards, update_collections
from ledger.thresholds import settle
from ledger.views import STAMP_COLUMNS, stamp_row
from rules import ProgramDefinition


async def settle_program(conn: AsyncConnection, program: ProgramDefinition, now: datetime) -> int:
    """Reward every collection of `program` whose count reaches its threshold; how many."""
    collections = await _reaching(conn, program)
    if not collections:
        return 0
    live = await _current_stamps(conn, collections)
    settled = [settle(program, c, live.get(c.id, []), now) for c in collections]
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


async def _current_stamps(
    conn: AsyncConnection, collections: list[CollectionView]
) -> dict[str, list[StampRow]]:
    """The last `unredeemed_purchases` live stamps of each collection, oldest first."""
    result = await conn.execute(
        text(
            f"""
            SELECT ranked.* FROM (
                SELECT {STAMP_COLUMNS}, row_number() OVER (
                    PARTITION BY s.collection_id ORDER BY s.id DESC) AS n
                FROM stamps s
                JOIN unnest(CAST(:ids AS text[]), CAST(:counts AS int[])) AS c(id, count)
                  ON c.id = s.collection_id
                WHERE s.status = 'live'
            ) ranked
            JOIN unnest(CAST(:ids AS text[]), CAST(:counts AS int[])) AS c(id, count)
              ON c.id = ranked.collection_id AND ranked.n <= c.count
            ORDER BY ranked.id
            """  # noqa: S608 (constant columns)
        ),
        {
            "ids": [c.id for c in collections],
            "counts": [c.tally.unredeemed_purchases for c in collections],
        },
    )
    stamps: dict[str, list[StampRow]] = {}
    for row in result:
        stamps.setdefault(row.collection_id, []).append(stamp_row(row))
    return stamps
