"""Re-derives every counter and checks every reward and stamp against the rows behind it.

For each collection: `progress = live stamps + sum(adjustment.delta) -
sum(reward.stamps_used)`, so `unredeemed_purchases = max(progress, 0)`,
`owed_stamps = max(-progress, 0)`, `cycle = rewards + 1`, rewards numbered 1..n, and the
count shown below the threshold (`counters`). For each reward: a counted purchase, paid back
once, never beyond it (`rewards`), and the amount its program version pays (`terms`). For
each stamp: voided when its undos void it, made after the enrollment, under the daily cap,
and voided only by its own purchase's undo or withdrawal (`stamps`). docs/stamping.md,
"Reconciliation", lists every check.

A difference is a defect somewhere; after any fault, there must be none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.reconcile.counters import counters
from ledger.reconcile.differences import Difference
from ledger.reconcile.rewards import paid_back_twice, rewards, uncounted_purchases
from ledger.reconcile.stamps import (
    days_over_the_cap,
    stamps_before_enrollment,
    undone_stamps,
    unexplained_voids,
)
from ledger.reconcile.terms import reward_amounts, unversioned_rewards
from ledger.schema import ReconciliationRun

__all__ = [
    "KEPT_DIFFERENCES",
    "Difference",
    "Reconciliation",
    "RecordedRun",
    "check_in_one_snapshot",
    "last_run",
    "reconcile",
    "record_run",
]

Check = Callable[[AsyncConnection], Awaitable[list[Difference]]]

CHECKS: tuple[Check, ...] = (
    counters,
    rewards,
    paid_back_twice,
    reward_amounts,
    uncounted_purchases,
    undone_stamps,
    unexplained_voids,
    stamps_before_enrollment,
    days_over_the_cap,
)


@dataclass
class Reconciliation:
    """What `reconcile` looked at, and every difference it found.

    `unversioned_rewards` counts the rewards whose amount it could not judge: they name no
    program version the ledger holds (made before migration 0019).
    """

    collections: int = 0
    rewards: int = 0
    differences: list[Difference] = field(default_factory=list)
    unversioned_rewards: int = 0

    def summary(self) -> str:
        return (
            f"reconcile: collections={self.collections} rewards={self.rewards} "
            f"differences={len(self.differences)} unversioned_rewards={self.unversioned_rewards}"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "collections": self.collections,
            "rewards": self.rewards,
            "differences": [asdict(d) for d in self.differences],
            "unversioned_rewards": self.unversioned_rewards,
        }


async def reconcile(conn: AsyncConnection) -> Reconciliation:
    """Check the whole ledger; best run in a REPEATABLE READ transaction (one snapshot)."""
    result = Reconciliation()
    totals = (await conn.execute(text(_TOTALS))).one()
    result.collections, result.rewards = totals.collections, totals.rewards
    result.unversioned_rewards = await unversioned_rewards(conn)
    for check in CHECKS:
        result.differences += await check(conn)
    return result


_TOTALS = """
SELECT (SELECT count(*) FROM stamp_collections) AS collections,
       (SELECT count(*) FROM rewards) AS rewards
"""


KEPT_DIFFERENCES = 200
"""How many differences a recorded run keeps; its count says how many there were."""


@dataclass(frozen=True)
class RecordedRun:
    """A run of `reconcile` as recorded: when, and what it found."""

    id: int
    started_at: datetime
    finished_at: datetime
    collections: int
    rewards: int
    difference_count: int
    differences: list[Difference]


async def record_run(
    conn: AsyncConnection, result: Reconciliation, started_at: datetime, finished_at: datetime
) -> int:
    """Keep a run's result, for the console; its id."""
    kept = [asdict(d) for d in result.differences[:KEPT_DIFFERENCES]]
    stmt = (
        insert(ReconciliationRun)
        .values(
            started_at=started_at,
            finished_at=finished_at,
            collections=result.collections,
            rewards=result.rewards,
            difference_count=len(result.differences),
            differences=kept,
        )
        .returning(ReconciliationRun.id)
    )
    return int((await conn.execute(stmt)).scalar_one())


async def last_run(conn: AsyncConnection) -> RecordedRun | None:
    """The latest recorded run, or None."""
    r = ReconciliationRun
    columns = (r.id, r.started_at, r.finished_at, r.collections, r.rewards, r.difference_count)
    stmt = select(*columns, r.differences).order_by(r.id.desc()).limit(1)
    row = (await conn.execute(stmt)).one_or_none()
    if row is None:
        return None
    return RecordedRun(
        row.id,
        row.started_at,
        row.finished_at,
        row.collections,
        row.rewards,
        row.difference_count,
        [Difference(**d) for d in list(row.differences)],
    )


async def check_in_one_snapshot(conn: AsyncConnection) -> Reconciliation:
    """`reconcile` in one REPEATABLE READ snapshot, while workers go on stamping; the
    transaction must not have run a statement yet."""
    await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
    return await reconcile(conn)
