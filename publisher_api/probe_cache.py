"""Readiness checks answered from memory for a few seconds, so `/readyz` costs little.

`/readyz` needs no key. Without a cache, each call would open a round trip to the database
and build a Kafka admin client; a flood of calls would be a flood of that work. One check
runs at a time: calls arriving while it runs wait for its answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

PROBE_CACHE_S = 3.0
"""How long a readiness answer is reused: an outage shows within this long."""


class CachedCheck:
    """`check()`'s last answer, reused for `ttl_s`; a check that raises answers False."""

    def __init__(
        self,
        name: str,
        check: Callable[[], Awaitable[bool]],
        clock: Callable[[], float],
        ttl_s: float = PROBE_CACHE_S,
    ) -> None:
        self.name = name
        self._check = check
        self._clock = clock
        self._ttl_s = ttl_s
        self._answer: tuple[bool, float] | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> bool:
        if (answer := self._fresh()) is not None:
            return answer
        async with self._lock:
            if (answer := self._fresh()) is not None:
                return answer
            ok = await self._run()
            self._answer = (ok, self._clock())
            return ok

    def _fresh(self) -> bool | None:
        if self._answer is None:
            return None
        ok, at = self._answer
        return ok if 0 <= self._clock() - at < self._ttl_s else None

    async def _run(self) -> bool:
        try:
            return await self._check()
        except Exception:  # a failing probe means "not ready", whatever the failure
            log.warning("%s readiness check failed", self.name, exc_info=True)
            return False
