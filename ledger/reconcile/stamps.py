"""What each stamp's status needs: undos that void it, an enrollment before its purchase,
room under the daily cap, and a void that names its own purchase.

After an edit of a program, a stamp stands as the version in force when it was judged left
it, and the ledger does not record which version that was: these checks judge a stamp by the
most lenient of the versions the ledger knows (`program_versions` and the current row).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.domain import UndoFact, voiding_undo
from ledger.reconcile.differences import VERSIONS, Difference, of_the_purchase
from rules import PartialRefunds

# `keep` voids fewer stamps than `void`: a stamp some version kept may stand.
_UNDONE = f"""
WITH {VERSIONS}, lenient AS (
    SELECT program_id, coalesce(bool_or(rules->>'partial_refunds' = 'keep'), false) AS keep
    FROM versions GROUP BY program_id
)
SELECT s.id AS stamp_id, s.collection_id, s.purchase_id, s.amount, s.currency, l.keep,
       u.id, u.original_id, u.member_id, u.type, u.amount AS undo_amount,
       u.currency AS undo_currency
FROM stamps s
JOIN stamp_collections c ON c.id = s.collection_id
JOIN lenient l ON l.program_id = c.program_id
JOIN undos u ON u.member_id = c.member_id AND {of_the_purchase("u", "s", "c.member_id")}
WHERE s.status IN ('live', 'capped')
ORDER BY s.id
"""  # noqa: S608 (constant SQL)


async def undone_stamps(conn: AsyncConnection) -> list[Difference]:
    """Stamps still counted (or waiting on a cap) that the undos of their purchase void under
    every version's `partial_refunds`."""
    stamps: dict[int, Any] = {}
    undos: dict[int, list[UndoFact]] = defaultdict(list)
    for r in await conn.execute(text(_UNDONE)):
        stamps[r.stamp_id] = r
        undos[r.stamp_id].append(
            UndoFact(r.id, r.original_id, r.member_id, r.type, r.undo_amount, r.undo_currency)
        )
    found = []
    for stamp_id, r in stamps.items():
        policy = PartialRefunds.KEEP if r.keep else PartialRefunds.VOID
        voider = voiding_undo(policy, r.amount, r.currency, undos[stamp_id])
        if voider is not None:
            subject = f"{r.collection_id}/{r.purchase_id}"
            found.append(Difference("stamp not voided", subject, f"voided by {voider}", "counted"))
    return found


# A void is an undo of the member naming the purchase, or a withdrawal: an event of the
# purchase that happened before the collection's enrollment.
_VOIDS = f"""
SELECT s.collection_id, s.purchase_id, s.void_transaction_id,
       EXISTS (SELECT 1 FROM undos u
               WHERE u.member_id = c.member_id AND u.id = s.void_transaction_id)
       OR EXISTS (SELECT 1 FROM purchase_events w
                  WHERE w.member_id = c.member_id AND w.id = s.void_transaction_id) AS known
FROM stamps s
JOIN stamp_collections c ON c.id = s.collection_id
WHERE s.status = 'voided'
  AND NOT EXISTS (SELECT 1 FROM undos u
                  WHERE u.member_id = c.member_id AND u.id = s.void_transaction_id
                    AND {of_the_purchase("u", "s", "c.member_id")})
  AND NOT EXISTS (SELECT 1 FROM purchase_events w
                  WHERE w.member_id = c.member_id AND w.id = s.void_transaction_id
                    AND w.purchase_id = s.purchase_id AND w.occurred_at < c.created_at)
ORDER BY s.id
"""  # noqa: S608 (constant SQL)


async def unexplained_voids(conn: AsyncConnection) -> list[Difference]:
    """Voided stamps whose `void_transaction_id` is no undo or event of the member ("void
    without undo"), or one of another purchase, or an event after the enrollment."""
    found = []
    for r in await conn.execute(text(_VOIDS)):
        subject = f"{r.collection_id}/{r.purchase_id}"
        if not r.known:
            expected = f"undo {r.void_transaction_id} in the ledger"
            found.append(Difference("void without undo", subject, expected, "none"))
        else:
            expected = f"an undo of {r.purchase_id}, or an event of it before the enrollment"
            found.append(
                Difference("void not of its purchase", subject, expected, r.void_transaction_id)
            )
    return found


_BEFORE_ENROLLMENT = """
SELECT s.collection_id, s.purchase_id, c.created_at AS enrolled_at,
       min(e.occurred_at) AS happened_at
FROM stamps s
JOIN stamp_collections c ON c.id = s.collection_id
JOIN purchase_events e ON e.member_id = c.member_id AND e.purchase_id = s.purchase_id
WHERE s.status IN ('live', 'capped') AND e.occurred_at < c.created_at
GROUP BY s.id, s.collection_id, s.purchase_id, c.created_at
ORDER BY s.id
"""


async def stamps_before_enrollment(conn: AsyncConnection) -> list[Difference]:
    """Live or capped stamps of a purchase that happened (its earliest remembered event)
    before the collection's enrollment."""
    return [
        Difference(
            "stamp before enrollment",
            f"{r.collection_id}/{r.purchase_id}",
            f"a purchase at or after the enrollment, {r.enrolled_at.isoformat()}",
            f"it happened at {r.happened_at.isoformat()}",
        )
        for r in await conn.execute(text(_BEFORE_ENROLLMENT))
    ]


# Days are counted on each clock any version had, against the largest cap any had: after an
# edit of either, the stamps counted before it were judged by the old ones. A day is over the
# cap only when it is on every clock; a program that was ever uncapped is not checked.
_OVER_THE_CAP = f"""
WITH {VERSIONS}, caps AS (
    SELECT program_id, max((rules->>'daily_cap_per_member')::int) AS cap,
           count(DISTINCT coalesce(rules->>'timezone', 'UTC')) AS clocks
    FROM versions GROUP BY program_id
    HAVING bool_and(rules->>'daily_cap_per_member' IS NOT NULL)
), clocks AS (
    SELECT DISTINCT program_id, coalesce(rules->>'timezone', 'UTC') AS zone FROM versions
), days AS (
    SELECT s.collection_id, c.program_id, k.zone,
           (s.occurred_at AT TIME ZONE k.zone)::date AS day, count(*) AS live
    FROM stamps s
    JOIN stamp_collections c ON c.id = s.collection_id
    JOIN caps p ON p.program_id = c.program_id
    JOIN clocks k ON k.program_id = c.program_id
    WHERE s.status = 'live'
    GROUP BY s.collection_id, c.program_id, k.zone, day
)
SELECT d.collection_id, d.day, min(d.live) AS live, p.cap
FROM days d
JOIN caps p ON p.program_id = d.program_id
WHERE d.live > p.cap
GROUP BY d.collection_id, d.day, p.cap, p.clocks
HAVING count(*) = p.clocks
ORDER BY d.collection_id, d.day
"""  # noqa: S608 (constant SQL)


async def days_over_the_cap(conn: AsyncConnection) -> list[Difference]:
    """Collections' days with more live stamps than `daily_cap_per_member` allows."""
    return [
        Difference(
            "day over the cap",
            f"{r.collection_id}/{r.day.isoformat()}",
            f"at most {r.cap} live stamps",
            str(r.live),
        )
        for r in await conn.execute(text(_OVER_THE_CAP))
    ]
