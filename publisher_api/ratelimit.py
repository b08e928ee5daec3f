"""Per-key token buckets, held in this API process's memory.

Each API process limits on its own: behind a load balancer with N processes a key may make up
to N times the configured rate. The clock is a parameter so tests never sleep.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ledger.errors import AutostampError

POLICY_NAME = "per-key"
WINDOW_S = 60


@dataclass(frozen=True)
class RateLimitDecision:
    """The outcome of one request against its key's bucket, as the headers report it."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    retry_after_s: int

    def headers(self) -> dict[str, str]:
        """The IETF draft fields plus the widespread X-RateLimit-* ones."""
        return {
            "RateLimit-Policy": f'"{POLICY_NAME}";q={self.limit};w={WINDOW_S}',
            "RateLimit": f'"{POLICY_NAME}";r={self.remaining};t={self.reset_s}',
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_s),
        }


class RateLimited(AutostampError):
    """The key has spent its bucket; `decision` says when to come back."""

    def __init__(self, decision: RateLimitDecision) -> None:
        super().__init__(f"rate limit exceeded; retry in {decision.retry_after_s}s")
        self.decision = decision


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """A bucket per key: `per_minute` tokens a minute, holding at most `1 + burst` tokens."""

    def __init__(self, per_minute: int, burst: int, clock: Callable[[], float]) -> None:
        self.per_minute = per_minute
        self.capacity = 1 + burst
        self.rate = per_minute / WINDOW_S
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str) -> RateLimitDecision:
        """Spend one token of `key`'s bucket if it has one."""
        now = self.clock()
        bucket = self._buckets.setdefault(key, _Bucket(self.capacity, now))
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(self.capacity, bucket.tokens + elapsed * self.rate)
        bucket.updated = now
        allowed = bucket.tokens >= 1
        if allowed:
            bucket.tokens -= 1
        return RateLimitDecision(
            allowed=allowed,
            limit=self.per_minute,
            remaining=math.floor(bucket.tokens),
            reset_s=math.ceil((self.capacity - bucket.tokens) / self.rate),
            retry_after_s=0 if allowed else max(1, math.ceil((1 - bucket.tokens) / self.rate)),
        )
