"""Live API keys trusted from memory for at most a second, so a steady caller costs no lookup.

A key checked against the ledger is trusted for `KeyCache.ttl_s` (one second by default):
a revoked, rotated or expired key is refused by every process within that time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import keys
from ledger.database import transaction
from ledger.keys import ApiKeyRecord

MAX_CACHED_KEYS = 10_000


class KeyCache:
    """Live keys recently found in the ledger, each trusted for `ttl_s` seconds of `clock`.

    Only keys that passed are kept; an unknown or dead token is looked up every time. When
    many requests of one key arrive as its entry goes stale, one of them looks it up and the
    others wait for that answer.
    """

    def __init__(self, engine: AsyncEngine, ttl_s: float, clock: Callable[[], float]) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self.clock = clock
        self._keys: dict[str, tuple[float, ApiKeyRecord]] = {}
        self._lookups: dict[str, asyncio.Future[ApiKeyRecord]] = {}

    async def authenticate(self, token: str) -> ApiKeyRecord:
        """The live key `token` belongs to; raises AuthError for anything else."""
        entry = self._keys.get(token)
        if entry is not None and self.clock() - entry[0] < self.ttl_s:
            key = entry[1]
            if key.expires_at is None or key.expires_at > datetime.now(UTC):
                return key
        pending = self._lookups.get(token)
        if pending is not None:
            return await asyncio.shield(pending)
        lookup = asyncio.ensure_future(self._look_up(token))
        self._lookups[token] = lookup
        try:
            return await asyncio.shield(lookup)
        finally:
            if self._lookups.get(token) is lookup:
                del self._lookups[token]

    async def _look_up(self, token: str) -> ApiKeyRecord:
        looked_up_at = self.clock()
        try:
            async with transaction(self.engine) as conn:
                key = await keys.authenticate(conn, token, datetime.now(UTC))
        except Exception:
            self._keys.pop(token, None)
            raise
        if len(self._keys) >= MAX_CACHED_KEYS:
            self._keys.clear()
        self._keys[token] = (looked_up_at, key)
        return key
