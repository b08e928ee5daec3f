"""The live flow the console shows: what workers applied per minute, and their consumer lag.

Each worker counts what it applies in memory, by minute (`streams.metrics.FlowTally`), and
adds its counts to its own rows here every few seconds, outside the stamping transactions:
no two workers write the same row, and the stamping path gains no statement. The figures are
the workers' counts (a crash can lose the last few seconds of them); the ledger's own rows,
which `reconcile` checks, are the record of money.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.batch import BatchOutcome
from ledger.schema import ConsumerLag, FlowMinute

KEPT = timedelta(days=7)
"""How long minutes are kept; older ones are deleted as workers record new ones."""
COUNTS = ("applied", "repeated", "unmatched", "dead_lettered", "stamps", "voids", "rewards")


@dataclass(frozen=True)
class Minute:
    """Every worker's counts for one minute."""

    minute: datetime
    counts: BatchOutcome

    @property
    def transactions(self) -> int:
        return self.counts.events


@dataclass(frozen=True)
class PartitionLag:
    partition: int
    lag: int
    worker: str
    measured_at: datetime


async def record_flow(
    conn: AsyncConnection,
    worker: str,
    minutes: Mapping[datetime, BatchOutcome],
    lags: Mapping[int, int],
    now: datetime,
) -> None:
    """Add a worker's counts to its minutes, and put down the lags it measured."""
    if minutes:
        rows = [
            {"minute": m, "worker": worker, **{c: getattr(o, c) for c in COUNTS}}
            for m, o in sorted(minutes.items())
        ]
        stmt = insert(FlowMinute).values(rows)
        added = {c: getattr(FlowMinute, c) + getattr(stmt.excluded, c) for c in COUNTS}
        await conn.execute(
            stmt.on_conflict_do_update(index_elements=["minute", "worker"], set_=added)
        )
        await conn.execute(delete(FlowMinute).where(FlowMinute.minute < now - KEPT))
    if lags:
        values = [
            {"partition": p, "lag": lag, "worker": worker, "measured_at": now}
            for p, lag in sorted(lags.items())
        ]
        stmt = insert(ConsumerLag).values(values)
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["partition"],
                set_={"lag": stmt.excluded.lag, "worker": worker, "measured_at": now},
            )
        )


async def recent_minutes(conn: AsyncConnection, now: datetime, count: int = 60) -> list[Minute]:
    """The last `count` minutes up to `now`, oldest first, a minute with nothing included."""
    last = now.replace(second=0, microsecond=0)
    first = last - timedelta(minutes=count - 1)
    sums = [func.sum(getattr(FlowMinute, c)).label(c) for c in COUNTS]
    stmt = (
        select(FlowMinute.minute, *sums)
        .where(FlowMinute.minute >= first)
        .group_by(FlowMinute.minute)
    )
    found = {row.minute: row for row in (await conn.execute(stmt)).all()}
    result = []
    for n in range(count):
        minute = first + timedelta(minutes=n)
        row = found.get(minute)
        counts = {c: int(getattr(row, c)) for c in COUNTS} if row is not None else {}
        result.append(Minute(minute, BatchOutcome(**counts)))
    return result


async def lags(conn: AsyncConnection) -> list[PartitionLag]:
    """The last lag measured on each partition, by partition."""
    c = ConsumerLag
    stmt = select(c.partition, c.lag, c.worker, c.measured_at).order_by(c.partition)
    return [PartitionLag(*row) for row in await conn.execute(stmt)]
