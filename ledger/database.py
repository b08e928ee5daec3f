"""Units of work on the ledger's database; a lost or refused connection becomes a StorageError."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.errors import StorageError

log = logging.getLogger(__name__)


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One database transaction: committed when the block ends, rolled back when it raises."""
    try:
        async with engine.begin() as conn:
            yield conn
    except (OperationalError, InterfaceError) as exc:
        # Connection-level failures are transient; callers may retry or answer "unavailable".
        raise StorageError(f"database unavailable: {exc.orig or exc}") from exc


async def reachable(engine: AsyncEngine, timeout_s: float = 2.0) -> bool:
    """Whether the database answers a trivial query within `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s), transaction(engine) as conn:
            await conn.execute(text("SELECT 1"))
    except (StorageError, TimeoutError, OSError) as exc:
        log.warning("database readiness check failed: %s", exc)
        return False
    return True
