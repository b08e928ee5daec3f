"""Each API key's token bucket, kept in one row that every API process and replica leases from.

A process takes tokens from the row in small leases and spends them in memory, so the row is
written about once per lease, not once per request. Tokens leased are gone from the row at
once: two processes can never both spend the same token, so the shared limit is never
exceeded; a lease a process does not spend only makes the limit stricter for a moment.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text

from ledger.statements import Statements


@dataclass(frozen=True)
class BucketShape:
    """How a bucket fills: `rate` tokens a second, up to `capacity` tokens."""

    capacity: float
    rate: float


@dataclass(frozen=True)
class Lease:
    """Tokens granted to one process, and what the row held once they were taken."""

    granted: int
    left: float


# One statement, so one round trip and atomic under concurrent leases of the same key: refill
# for the time since the last lease, add back what the caller returns, then grant up to `want`
# whole tokens. The refill never runs backwards when clocks of two hosts disagree.
_LEASE = text(
    """
    INSERT INTO api_rate_buckets AS b (key_id, tokens, updated_at, last_grant)
    VALUES (:key_id, :capacity - least(:want, :capacity), :at, least(:want, :capacity))
    ON CONFLICT (key_id) DO UPDATE SET
        tokens = least(:capacity, b.tokens + :returned
                       + greatest(0, :at - b.updated_at) * :rate)
               - least(:want, greatest(0, floor(least(:capacity, b.tokens + :returned
                       + greatest(0, :at - b.updated_at) * :rate)))),
        last_grant = least(:want, greatest(0, floor(least(:capacity, b.tokens + :returned
                       + greatest(0, :at - b.updated_at) * :rate)))),
        updated_at = greatest(b.updated_at, :at)
    RETURNING last_grant, tokens
    """
)


async def lease(
    db: Statements,
    key_id: str,
    shape: BucketShape,
    *,
    want: int,
    returned: int,
    at: float,
) -> Lease:
    """Take up to `want` tokens from `key_id`'s bucket at time `at` (epoch seconds).

    `returned` tokens, leased earlier and not spent, go back into the bucket first.
    """
    params = {
        "key_id": key_id,
        "capacity": float(shape.capacity),
        "rate": float(shape.rate),
        "want": want,
        "returned": float(returned),
        "at": at,
    }
    [row] = await db.rows(_LEASE, params)
    return Lease(granted=int(row["last_grant"]), left=float(row["tokens"]))
