"""Each reward's amount, judged by the program version in force when it was triggered.

A fixed reward pays the version's amount in its currency. A refund pays back its purchase in
the purchase's currency, less the partial refunds of it known when it was triggered, capped by
the version's `max_amount`: since refunds after the reward are never clawed back, the amount
lies between `min(gross - every partial refund known now, cap)` and `min(gross, cap)`. A refund
that names no purchase pays 0. A reward with no version the ledger knows (made before
migration 0019, or of a program written by hand) is not judged here but counted: what every
version agrees on, `ledger.reconcile.rewards` judges.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.reconcile.differences import VERSIONS, Difference, of_the_purchase

_JUDGED = f"""
WITH {VERSIONS}, due AS (
    SELECT r.id, r.type, r.amount, r.currency, c.program_id, r.program_version,
           v.reward_config->>'type' AS due_type,
           CASE WHEN v.reward_config->>'type' = 'fixed-reward'
                THEN v.reward_config->>'currency'
                -- A refund of nothing (it names no purchase) has no currency to judge.
                ELSE coalesce(s.currency, r.currency) END AS due_currency,
           CASE WHEN v.reward_config->>'type' = 'fixed-reward'
                THEN (v.reward_config->>'amount')::bigint
                WHEN s.id IS NULL THEN 0
                ELSE least(greatest(s.amount - x.partial, 0), x.cap) END AS low,
           CASE WHEN v.reward_config->>'type' = 'fixed-reward'
                THEN (v.reward_config->>'amount')::bigint
                WHEN s.id IS NULL THEN 0
                ELSE least(s.amount, x.cap) END AS high
    FROM rewards r
    JOIN stamp_collections c ON c.id = r.collection_id
    JOIN versions v ON v.program_id = c.program_id AND v.version = r.program_version
    LEFT JOIN stamps s ON s.collection_id = r.collection_id AND s.purchase_id = r.purchase_id
    CROSS JOIN LATERAL (
        -- The cap counts minor units of its own currency only (`ledger.domain.RewardTerms`).
        SELECT CASE WHEN s.currency = v.reward_config->>'currency'
                    THEN (v.reward_config->>'max_amount')::bigint END AS cap,
               (SELECT coalesce(sum(u.amount), 0) FROM undos u
                WHERE u.member_id = c.member_id AND u.currency = s.currency
                  AND u.amount < s.amount AND {of_the_purchase("u", "s", "c.member_id")})
                   AS partial
    ) x
    -- A reward without its stamp, or above what any version pays, is named already.
    WHERE (r.purchase_id IS NULL OR s.id IS NOT NULL)
      AND NOT (r.type = 'refund' AND r.purchase_id IS NULL AND r.amount > 0)
      AND NOT coalesce(r.type = 'refund' AND (r.amount > s.amount OR r.currency <> s.currency),
                       false)
), judged AS (
    SELECT *, coalesce(type = due_type AND amount BETWEEN low AND high
                       AND currency = due_currency, false) AS right_amount
    FROM due
)
SELECT DISTINCT ON (j.id) j.* FROM judged j
WHERE NOT EXISTS (SELECT 1 FROM judged k WHERE k.id = j.id AND k.right_amount)
ORDER BY j.id, j.low
"""  # noqa: S608 (constant SQL)


async def reward_amounts(conn: AsyncConnection) -> list[Difference]:
    """Rewards that are not what their program version pays."""
    found = []
    for r in await conn.execute(text(_JUDGED)):
        paid = f"{r.low}" if r.low == r.high else f"{r.low} to {r.high}"
        expected = (
            f"{r.due_type} of {paid} {r.due_currency} ({r.program_id} version {r.program_version})"
        )
        found.append(
            Difference("reward amount", r.id, expected, f"{r.type} of {r.amount} {r.currency}")
        )
    return found


_UNVERSIONED = f"""
WITH {VERSIONS}
SELECT count(*) FROM rewards r
JOIN stamp_collections c ON c.id = r.collection_id
WHERE NOT EXISTS (SELECT 1 FROM versions v
                  WHERE v.program_id = c.program_id AND v.version = r.program_version)
"""  # noqa: S608 (constant SQL)


async def unversioned_rewards(conn: AsyncConnection) -> int:
    """How many rewards name no program version the ledger holds: their amounts go unjudged."""
    return int((await conn.execute(text(_UNVERSIONED))).scalar_one())
