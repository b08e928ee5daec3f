"""Each collection's counters, re-derived from its stamps, adjustments and rewards."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.reconcile.differences import Difference

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


async def counters(conn: AsyncConnection) -> list[Difference]:
    """Counters that are not `max(±progress, 0)`, cycles not numbered 1..n, a count at the
    threshold."""
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
