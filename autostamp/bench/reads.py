"""Client CPU of one read of one row: on the API's psycopg pool, and on the SQLAlchemy engine.

Both read the same stamp collection by its id, one after another on one connection, with
the statement the API uses (`ledger.collections`), in a scratch ledger; `time.process_time`
counts this process's CPU only, so PostgreSQL's share is left out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import create_engine, insert
from sqlalchemy.ext.asyncio import create_async_engine

from autostamp.bench.database import scratch_database
from autostamp.wiring import libpq_url
from ledger import collections
from ledger.schema import Program, StampCollection
from ledger.statements import InTransaction, PooledStatements
from rules.samples import sample_program

WARMUP = 300


def run(quick: bool = False) -> None:
    reads = 2_000 if quick else 20_000
    with scratch_database() as (url, where):
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(insert(Program), [sample_program("lp_bench")])
            conn.execute(
                insert(StampCollection),
                [{"id": "sc_BENCH", "program_id": "lp_bench", "member_id": "m_1"}],
            )
        engine.dispose()
        print(f"database={where} reads={reads}")
        figures = asyncio.run(_compare(url, reads))
    pool, sqlalchemy = figures["pool"], figures["engine"]
    ratio = sqlalchemy / pool
    print(f"reads: pool_cpu_us={pool:.0f} engine_cpu_us={sqlalchemy:.0f} ratio={ratio:.2f}")


async def _compare(url: str, reads: int) -> dict[str, float]:
    pooled = PooledStatements(libpq_url(url), 1)
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT", pool_size=1)

    async def through_engine() -> None:
        async with engine.connect() as conn:
            await collections.get_collection(InTransaction(conn), "sc_BENCH")

    async def through_pool() -> None:
        await collections.get_collection(pooled, "sc_BENCH")

    try:
        return {
            "engine": await _cpu_per_read(through_engine, reads),
            "pool": await _cpu_per_read(through_pool, reads),
        }
    finally:
        await pooled.close()
        await engine.dispose()


async def _cpu_per_read(read: Callable[[], Awaitable[None]], reads: int) -> float:
    for _ in range(WARMUP):
        await read()
    started = time.process_time()
    for _ in range(reads):
        await read()
    return (time.process_time() - started) / reads * 1e6
