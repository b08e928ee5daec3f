"""Per-key token buckets shared by every API process and replica, spent from leases in memory.

The bucket of a key lives in the ledger (`ledger.rate_limits`). A process leases a few tokens
at a time from it and spends them without asking again; tokens it has not spent after
`LEASE_S` go back with its next lease. A lease is as small as the limit allows: one token for
the default limits (so each admitted request is one short write, and a refused one none),
up to a tenth of a second's worth for generous limits. Because leased tokens leave the shared
bucket at once, all processes together never admit more than the limit; a lease held by a
process that no longer sees the key makes the limit briefly stricter, never looser.

A key that finds the shared bucket empty is refused in memory until the bucket has refilled
by a token, so a flood of refused requests costs no database work.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ledger.errors import AutostampError
from ledger.rate_limits import BucketShape, Lease

POLICY_NAME = "per-key"
WINDOW_S = 60
LEASE_S = 1.0
"""A lease's tokens are spent within this many seconds, or returned with the next lease."""
LEASE_SHARE_S = 0.1
"""The most a lease holds: this many seconds of refill (and a quarter of the bucket at most)."""

LeaseSource = Callable[[str, int, int, float], Awaitable[Lease]]
"""Takes `(key_id, want, returned, at)` and leases from the shared bucket."""


@dataclass(frozen=True)
class RateLimitDecision:
    """The outcome of one request against its key's bucket, as the headers report it."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    retry_after_s: int

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """`headers`, as an ASGI response start message carries them."""
        return [(name.lower().encode(), value.encode()) for name, value in self.headers().items()]

    def headers(self) -> dict[str, str]:
        """The IETF draft fields plus the widespread X-RateLimit-* ones.

        Both give the reset as delta-seconds (the draft's `t`): `X-RateLimit-Reset` is the
        number of seconds until the bucket is full again, never an epoch time.
        """
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
class _Held:
    """What this process knows of one key's bucket."""

    tokens: int = 0
    leased_at: float = -math.inf
    shared_left: float = 0.0
    empty_until: float = -math.inf
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class SharedBuckets:
    """A bucket per key: `per_minute` tokens a minute, holding at most `1 + burst` tokens."""

    def __init__(
        self, per_minute: int, burst: int, source: LeaseSource, clock: Callable[[], float]
    ) -> None:
        self.per_minute = per_minute
        self.shape = BucketShape(capacity=1 + burst, rate=per_minute / WINDOW_S)
        self.want = max(1, min(math.floor(self.shape.rate * LEASE_SHARE_S), (1 + burst) // 4))
        self.source = source
        self.clock = clock
        self._held: dict[str, _Held] = {}

    async def take(self, key: str) -> RateLimitDecision:
        """Spend one token of `key`'s bucket if the shared bucket has one."""
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = _Held()
        decision = self._spend(held, self.clock())
        if decision is not None:
            return decision
        async with held.lock:
            now = self.clock()
            decision = self._spend(held, now)  # another request may have leased meanwhile
            if decision is None:
                returned, held.tokens = held.tokens, 0
                lease = await self.source(key, self.want, returned, now)
                held.tokens, held.leased_at, held.shared_left = lease.granted, now, lease.left
                if lease.granted < 1:
                    held.empty_until = now + (1 - lease.left) / self.shape.rate
                decision = self._spend(held, now) or self._refused(held, now)
            return decision

    def _spend(self, held: _Held, now: float) -> RateLimitDecision | None:
        """Admit from the lease, or refuse while the shared bucket is known empty; else None."""
        if held.tokens >= 1 and now - held.leased_at < LEASE_S:
            held.tokens -= 1
            return self._decision(True, held.tokens + held.shared_left, retry_after=0.0)
        if now < held.empty_until:
            return self._refused(held, now)
        return None

    def _refused(self, held: _Held, now: float) -> RateLimitDecision:
        return self._decision(False, 0.0, retry_after=max(held.empty_until - now, 0.0))

    def _decision(self, allowed: bool, remaining: float, retry_after: float) -> RateLimitDecision:
        shape = self.shape
        return RateLimitDecision(
            allowed=allowed,
            limit=self.per_minute,
            remaining=math.floor(remaining),
            reset_s=math.ceil((shape.capacity - remaining) / shape.rate),
            retry_after_s=0 if allowed else max(1, math.ceil(retry_after)),
        )
