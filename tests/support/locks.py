"""Who waits for the programs lock, read from PostgreSQL's own lock table.

A test that races a program change against a batch or an adjustment holds the change's
transaction open, starts the other, and waits until PostgreSQL shows it queued on the lock:
the order the two take is then PostgreSQL's, not the scheduler's.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.catalog import PROGRAMS_LOCK

# pg_locks shows a bigint advisory key as its high and low 32 bits.
_WAITING = text(
    """
    SELECT count(*) FROM pg_locks
    WHERE locktype = 'advisory' AND NOT granted AND objsubid = 1
      AND classid = CAST(:high AS oid) AND objid = CAST(:low AS oid)
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
    """
)


async def waiting_for_programs(engine: AsyncEngine) -> int:
    """How many transactions of this database wait for the programs lock now."""
    key = {"high": PROGRAMS_LOCK >> 32, "low": PROGRAMS_LOCK & 0xFFFFFFFF}
    async with engine.connect() as conn:
        return int((await conn.execute(_WAITING, key)).scalar_one())


async def until_waiting_for_programs(engine: AsyncEngine, count: int, timeout_s: float) -> None:
    """Wait until `count` transactions wait for the programs lock; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while (found := await waiting_for_programs(engine)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{found} waiting for the programs lock, not {count}")
        await asyncio.sleep(0.05)
