"""Units of work on the ledger's database: one transaction each, driver errors classified.

Every transaction of autostamp opens here, so every database failure becomes one of the
errors of `ledger.errors` the same way (`ledger.failures.classify`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.errors import InfrastructureError
from ledger.failures import classify

log = logging.getLogger(__name__)


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One database transaction: committed when the block ends, rolled back when it raises."""
    try:
        async with engine.begin() as conn:
            yield conn
    except Exception as exc:
        ours = classify(exc)
        if ours is None:
            raise
        raise ours from exc


async def reachable(engine: AsyncEngine, timeout_s: float = 2.0) -> bool:
    """Whether the database answers a trivial query within `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s), transaction(engine) as conn:
            await conn.execute(text("SELECT 1"))
    except (InfrastructureError, TimeoutError, OSError) as exc:
        log.warning("database readiness check failed: %s", exc)
        return False
    return True
