"""What the money needs of each reward: a counted purchase, paid back once, never more than it.

The amount a reward pays under its program version is `ledger.reconcile.terms`'s.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.reconcile.differences import Difference, of_the_purchase

_REWARDS = """
SELECT r.id, r.type, r.amount, r.currency, r.purchase_id,
       s.amount AS stamp_amount, s.currency AS stamp_currency, s.id AS stamp_id
FROM rewards r
LEFT JOIN stamps s ON s.collection_id = r.collection_id AND s.purchase_id = r.purchase_id
WHERE (r.purchase_id IS NOT NULL AND s.id IS NULL)
   OR (r.type = 'refund' AND r.purchase_id IS NULL AND r.amount > 0)
   OR (r.type = 'refund' AND (r.amount > s.amount OR r.currency <> s.currency))
ORDER BY r.id
"""


async def rewards(conn: AsyncConnection) -> list[Difference]:
    """Rewards whose purchase has no stamp on the collection, and refunds paying back more than
    their purchase, in another currency, or anything when they name none (whatever the
    version, a refund pays at most its purchase)."""
    found = []
    for r in await conn.execute(text(_REWARDS)):
        if r.purchase_id is None:
            expected = "0: it names no purchase"
            found.append(Difference("refund above its purchase", r.id, expected, str(r.amount)))
        elif r.stamp_id is None:
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


_PAID_TWICE = """
SELECT c.program_id, r.purchase_id,
       array_agg(r.id || ' (' || r.collection_id || ')' ORDER BY r.id) AS paid
FROM rewards r
JOIN stamp_collections c ON c.id = r.collection_id
WHERE r.type = 'refund' AND r.amount > 0 AND r.purchase_id IS NOT NULL
GROUP BY c.program_id, c.member_id, r.purchase_id
HAVING count(*) > 1
ORDER BY c.program_id, r.purchase_id
"""


async def paid_back_twice(conn: AsyncConnection) -> list[Difference]:
    """Purchases of one member that two refunds of one program pay back (docs/stamping.md,
    "One payback per purchase"); two programs are two offers, and a fixed reward or a refund
    of 0 pays nothing back."""
    return [
        Difference(
            "purchase paid back twice",
            f"{r.program_id}/{r.purchase_id}",
            "one refund",
            f"{len(r.paid)}: {', '.join(r.paid)}",
        )
        for r in await conn.execute(text(_PAID_TWICE))
    ]


# A void is known to predate a reward when neither the worker's clock (`voided_at`) nor the
# database's (the rows of the undos and events that could have voided it) puts it as late:
# one batch may reward a purchase and then void it, and the two clocks need not agree.
_UNCOUNTED = f"""
SELECT r.id, r.purchase_id, s.status, s.voided_at, r.created_at
FROM rewards r
JOIN stamp_collections c ON c.id = r.collection_id
JOIN stamps s ON s.collection_id = r.collection_id AND s.purchase_id = r.purchase_id
WHERE s.status = 'capped'
   OR (s.status = 'voided'
       AND s.voided_at < r.created_at
       AND NOT EXISTS (SELECT 1 FROM undos u
                       WHERE u.member_id = c.member_id AND u.created_at >= r.created_at
                         AND {of_the_purchase("u", "s", "c.member_id")})
       AND NOT EXISTS (SELECT 1 FROM purchase_events e
                       WHERE e.member_id = c.member_id AND e.purchase_id = s.purchase_id
                         AND e.created_at >= r.created_at))
ORDER BY r.id
"""  # noqa: S608 (constant SQL)


async def uncounted_purchases(conn: AsyncConnection) -> list[Difference]:
    """Rewards paid for a purchase whose stamp was capped, or voided before the reward; one
    voided after it is the debt rule (docs/stamping.md, "Refunds and reversals")."""
    found = []
    for r in await conn.execute(text(_UNCOUNTED)):
        state = "capped" if r.status == "capped" else f"voided at {r.voided_at.isoformat()}"
        expected = f"a stamp of {r.purchase_id} live at {r.created_at.isoformat()}"
        found.append(Difference("reward for an uncounted purchase", r.id, expected, state))
    return found
