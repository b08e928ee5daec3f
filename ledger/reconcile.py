"""Re-derives every counter and reward from the stamp, void, undo, adjustment and reward rows.

For each collection: `progress = live stamps + sum(adjustment.delta) -
sum(reward.stamps_used)`, so
`unredeemed_purchases = max(progress, 0)`, `owed_stamps = max(-progress, 0)`,
`cycle = rewards + 1`, rewards numbered 1..n, and the count shown below the threshold.
For each reward: the purchase it paid for has a stamp on the collection, and a refund pays
at most that purchase's amount, in its currency. For each stamp still counted (or waiting
on a cap): no undo of its purchase voids it under its program's policy; for each voided
stamp, the undo that voided it is in the ledger.

A difference is a defect somewhere; after any fault, there must be none.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.domain import UndoFact, voiding_undo
from ledger.schema import ReconciliationRun
from rules import PartialRefunds


@dataclass(frozen=True)
class Difference:
    """One thing the rows say should be otherwise."""

    kind: str
    subject: str
    expected: str
    found: str


@dataclass
class Reconciliation:
    """What `reconcile` looked at, and every difference it found."""

    collections: int = 0
    rewards: int = 0
    differences: list[Difference] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"reconcile: collections={self.collections} rewards={self.rewards} "
            f"differences={len(self.differences)}"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "collections": self.collections,
            "rewards": self.rewards,
            "differences": [asdict(d) for d in self.differences],
        }


async def reconcile(conn: AsyncConnection) -> Reconciliation:
    """Check the whole ledger; best run in a REPEATABLE READ transaction (one snapshot)."""
    result = Reconciliation()
    totals = (await conn.execute(text(_TOTALS))).one()
    result.collections, result.rewards = totals.collections, totals.rewards
    for check in (_counters, _rewards, _undone_stamps, _voids_without_undo):
        result.differences += await check(conn)
    return result


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


_TOTALS = """
SELECT (SELECT count(*) FROM stamp_collections) AS collections,
       (SELECT count(*) FROM rewards) AS rewards
"""

_COUNTERS = """
WITH live AS (
    SELECT collection_id, count(*) AS live FROM stamps WHERE status = 'live'
    GROUP BY collection_id
), adjusted AS (
    SELECT collection_id, sum(delta) AS delta FROM stamp_adjustments GROUP BY collection_id
), paid AS (
    SELECT collection_id, count(*) AS n, sum(stamps_used) AS used, min(cycle) AS first,
           max(cycle) AS last
    FROM rewards GROUP BY collection_id
), derived AS (
    SELECT c.id, c.unredeemed_purchases, c.owed_stamps, c.cycle, p.qualifying_threshold,
           coalesce(live.live, 0) + coalesce(adjusted.delta, 0) - coalesce(paid.used, 0)
               AS progress,
           coalesce(paid.n, 0) AS rewards, paid.first, paid.last
    FROM stamp_collections c
    JOIN programs p ON p.id = c.program_id
    LEFT JOIN live ON live.collection_id = c.id
    LEFT JOIN adjusted ON adjusted.collection_id = c.id
    LEFT JOIN paid ON paid.collection_id = c.id
)
SELECT * FROM derived
WHERE unredeemed_purchases <> greatest(progress, 0)
   OR owed_stamps <> greatest(-progress, 0)
   OR cycle <> rewards + 1
   OR (rewards > 0 AND (first <> 1 OR last <> rewards))
   OR unredeemed_purchases >= qualifying_threshold
ORDER BY id
"""


async def _counters(conn: AsyncConnection) -> list[Difference]:
    found = []
    for r in await conn.execute(text(_COUNTERS)):
        expected = (max(r.progress, 0), max(-r.progress, 0), r.rewards + 1)
        stored = (r.unredeemed_purchases, r.owed_stamps, r.cycle)
        if expected != stored:
            found.append(Difference("counter", r.id, _counter(*expected), _counter(*stored)))
        if r.rewards and (r.first, r.last) != (1, r.rewards):
            found.append(
                Difference("reward cycles", r.id, f"1..{r.rewards}", f"{r.first}..{r.last}")
            )
        if r.unredeemed_purchases >= r.qualifying_threshold:
            found.append(
                Difference(
                    "counter at threshold",
                    r.id,
                    f"below {r.qualifying_threshold}",
                    str(r.unredeemed_purchases),
                )
            )
    return found


def _counter(unredeemed: int, owed: int, cycle: int) -> str:
    return f"unredeemed={unredeemed} owed={owed} cycle={cycle}"


_REWARDS = """
SELECT r.id, r.collection_id, r.type, r.amount, r.currency, r.purchase_id,
       s.amount AS stamp_amount, s.currency AS stamp_currency, s.id AS stamp_id
FROM rewards r
LEFT JOIN stamps s ON s.collection_id = r.collection_id AND s.purchase_id = r.purchase_id
WHERE r.purchase_id IS NOT NULL AND s.id IS NULL
   OR (r.type = 'refund' AND (r.amount > s.amount OR r.currency <> s.currency))
ORDER BY r.id
"""


async def _rewards(conn: AsyncConnection) -> list[Difference]:
    found = []
    for r in await conn.execute(text(_REWARDS)):
        if r.stamp_id is None:
            found.append(
                Difference("reward without stamp", r.id, f"a stamp of {r.purchase_id}", "none")
            )
        else:
            found.append(
                Difference(
                    "refund above its purchase",
                    r.id,
                    f"at most {r.stamp_amount} {r.stamp_currency}",
                    f"{r.amount} {r.currency}",
                )
            )
    return found


_UNDONE = """
SELECT s.id AS stamp_id, s.collection_id, s.purchase_id, s.amount, s.currency,
       p.rules->>'partial_refunds' AS policy,
       u.id, u.original_id, u.member_id, u.type, u.amount AS undo_amount,
       u.currency AS undo_currency
FROM stamps s
JOIN stamp_collections c ON c.id = s.collection_id
JOIN programs p ON p.id = c.program_id
JOIN undos u ON u.member_id = c.member_id
 AND (u.original_id = s.purchase_id
      OR u.original_id IN (SELECT e.id FROM purchase_events e
                           WHERE e.member_id = c.member_id AND e.purchase_id = s.purchase_id))
WHERE s.status IN ('live', 'capped')
ORDER BY s.id
"""


async def _undone_stamps(conn: AsyncConnection) -> list[Difference]:
    stamps: dict[int, Any] = {}
    undos: dict[int, list[UndoFact]] = defaultdict(list)
    for r in await conn.execute(text(_UNDONE)):
        stamps[r.stamp_id] = r
        undos[r.stamp_id].append(
            UndoFact(r.id, r.original_id, r.member_id, r.type, r.undo_amount, r.undo_currency)
        )
    found = []
    for stamp_id, r in stamps.items():
        policy = PartialRefunds(r.policy or PartialRefunds.VOID)
        voider = voiding_undo(policy, r.amount, r.currency, undos[stamp_id])
        if voider is not None:
            subject = f"{r.collection_id}/{r.purchase_id}"
            found.append(Difference("stamp not voided", subject, f"voided by {voider}", "counted"))
    return found


_VOIDS = """
SELECT s.collection_id, s.purchase_id, s.void_transaction_id FROM stamps s
JOIN stamp_collections c ON c.id = s.collection_id
WHERE s.status = 'voided'
  AND NOT EXISTS (SELECT 1 FROM undos u
                  WHERE u.member_id = c.member_id AND u.id = s.void_transaction_id)
  -- A withdrawal: an event of the purchase showed it happened before the enrollment.
  AND NOT EXISTS (SELECT 1 FROM purchase_events e
                  WHERE e.member_id = c.member_id AND e.id = s.void_transaction_id
                    AND e.purchase_id = s.purchase_id AND e.occurred_at < c.created_at)
ORDER BY s.id
"""


async def _voids_without_undo(conn: AsyncConnection) -> list[Difference]:
    return [
        Difference(
            "void without undo",
            f"{r.collection_id}/{r.purchase_id}",
            f"undo {r.void_transaction_id} in the ledger",
            "none",
        )
        for r in await conn.execute(text(_VOIDS))
    ]
