"""The peer of `bench pipeline`: what one would write without autostamp, as a faust worker.

A faust agent takes the events one at a time, decodes each, checks every program's rules in a
loop (each program's conditions compiled once, as a careful author would), and stamps in one
database transaction per event: find the enrollment, insert the stamp once, bump the count.

Run as `python -m autostamp.bench.peer TOPIC COUNT OUT` with the worker's settings; it writes
the seconds from its first event to its COUNT-th to OUT and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import faust
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from autostamp.settings import Settings
from autostamp.wiring import async_engine, worker_config
from ledger.catalog import definition_from_row
from rules import CardTransaction, InvalidTransaction, ProgramDefinition, parse_transaction
from rules.conditions import Condition, compile_conditions
from streams.app import faust_app, raw_topic

TABLES = """
CREATE TABLE IF NOT EXISTS bench_peer_stamps (
    collection_id text NOT NULL, purchase_id text NOT NULL,
    PRIMARY KEY (collection_id, purchase_id));
CREATE TABLE IF NOT EXISTS bench_peer_counts (collection_id text PRIMARY KEY, stamps int NOT NULL)
"""

Checked = list[tuple[ProgramDefinition, tuple[Condition, ...]]]


async def load_programs(
    engine: AsyncEngine,
) -> list[tuple[ProgramDefinition, tuple[Condition, ...]]]:
    async with engine.begin() as conn:
        for statement in TABLES.split(";"):
            await conn.execute(text(statement))
        rows = (await conn.execute(text("SELECT * FROM programs"))).mappings().all()
    programs = [definition_from_row(row) for row in rows]
    return [(p, compile_conditions(p)) for p in programs]


async def stamp_one(engine: AsyncEngine, tx: CardTransaction, programs: Checked) -> None:
    matched = [p for p, conditions in programs if all(c.holds(tx) for c in conditions)]
    async with engine.begin() as conn:
        for program in matched:
            found = await conn.execute(
                text(
                    "SELECT id FROM stamp_collections WHERE program_id = :p AND member_id = :m "
                    "AND created_at <= :at"
                ),
                {"p": program.id, "m": tx.member_id, "at": tx.occurred_at},
            )
            collection = found.scalar_one_or_none()
            if collection is None:
                continue
            inserted = await conn.execute(
                text(
                    "INSERT INTO bench_peer_stamps VALUES (:c, :p) ON CONFLICT DO NOTHING "
                    "RETURNING 1"
                ),
                {"c": collection, "p": tx.purchase_id},
            )
            if inserted.first() is not None:
                await conn.execute(
                    text(
                        "INSERT INTO bench_peer_counts VALUES (:c, 1) ON CONFLICT (collection_id) "
                        "DO UPDATE SET stamps = bench_peer_counts.stamps + 1"
                    ),
                    {"c": collection},
                )


def main(topic_name: str, expected: int, out: Path) -> None:
    settings = Settings()
    app = faust_app(worker_config(settings), f"peer-{os.getpid()}")
    topic = raw_topic(app, topic_name)
    engine = async_engine(settings)
    seen = {"count": 0, "first": 0.0}

    @app.agent(topic, concurrency=1)
    async def stamp(stream: Any) -> None:
        programs = await load_programs(engine)
        async for value in stream:
            seen["first"] = seen["first"] or time.perf_counter()
            with contextlib.suppress(InvalidTransaction):
                await stamp_one(engine, parse_transaction(value), programs)
            seen["count"] += 1
            if seen["count"] >= expected:
                seconds = time.perf_counter() - seen["first"]
                await asyncio.to_thread(out.write_text, f"{seconds:.6f}")
                os._exit(0)

    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
