"""Where a statement runs: inside a transaction already open, or as a transaction of its own.

The publisher API's reads (and its rate-limit leases) are one statement each and need no
transaction around them, so they run on a psycopg pool in autocommit: one round trip, no
BEGIN or COMMIT, the statement compiled once from the ledger's SQLAlchemy statement and
prepared by psycopg on each connection. `autostamp bench reads` measures both ways side by
side: the SQLAlchemy asyncio engine crosses into a greenlet for the checkout, the statement
and the return, and costs about twice the client CPU.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, cast

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy import Executable
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import ClauseElement

from ledger.database import transaction
from ledger.errors import StorageUnavailable
from ledger.failures import classify

Row = Mapping[str, Any]
Params = Mapping[str, Any]

_DIALECT = psycopg_dialect.dialect()  # type: ignore[no-untyped-call]


class Statements(Protocol):
    """Runs a statement and returns its rows as mappings of column name to value."""

    async def rows(self, stmt: Executable, params: Params | None = None) -> Sequence[Row]: ...


class InTransaction:
    """Statements on a SQLAlchemy connection, inside whatever transaction it has open."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def rows(self, stmt: Executable, params: Params | None = None) -> Sequence[Row]:
        result = await self.conn.execute(stmt, dict(params or {}))
        return cast(Sequence[Row], result.mappings().all())


class _Compiled:
    """A statement as psycopg runs it, with the values SQLAlchemy bound inside it."""

    def __init__(self, stmt: Executable) -> None:
        assert isinstance(stmt, ClauseElement)
        compiled = stmt.compile(dialect=_DIALECT)
        if "POSTCOMPILE" in compiled.string:  # an IN (...) list, expanded at execution
            raise ValueError(f"write `x = any_(array(...))` for `x IN (...)` in: {stmt}")
        self.sql = compiled.string
        self.bound = dict(compiled.params)
        self.stmt = stmt  # held, so the id that keys the cache is never reused


class OnEngine:
    """Each statement a transaction of its own, on a connection of a SQLAlchemy engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def rows(self, stmt: Executable, params: Params | None = None) -> Sequence[Row]:
        async with transaction(self.engine) as conn:
            return await InTransaction(conn).rows(stmt, params)


class PooledStatements:
    """Each statement a transaction of its own, in autocommit, on `size` psycopg connections.

    The pool opens on first use, inside the event loop that uses it; `close` ends it. The
    statements passed should be built once (module constants): they are compiled once each.
    """

    def __init__(
        self,
        conninfo: str,
        size: int,
        timeout_s: float = 10.0,
        options: Mapping[str, str] | None = None,
    ) -> None:
        self.pool = AsyncConnectionPool(
            conninfo,
            min_size=size,
            max_size=size,
            timeout=timeout_s,
            open=False,
            kwargs={"autocommit": True, **(options or {})},
        )
        self._compiled: dict[int, _Compiled] = {}
        self._opening: asyncio.Lock | None = None
        self._open = False

    async def rows(self, stmt: Executable, params: Params | None = None) -> Sequence[Row]:
        compiled = self._compiled.get(id(stmt))
        if compiled is None:
            compiled = self._compiled[id(stmt)] = _Compiled(stmt)
        values = {**compiled.bound, **params} if params else compiled.bound
        if not self._open:
            await self._open_pool()
        try:
            async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(compiled.sql, values, prepare=True)
                return await cur.fetchall()
        except PoolTimeout as exc:
            raise StorageUnavailable(f"database unavailable: {exc}") from exc
        except psycopg.Error as exc:
            wrapped = DBAPIError.instance(
                compiled.sql,
                None,
                exc,
                psycopg.Error,
                connection_invalidated=isinstance(exc, psycopg.OperationalError),
            )
            raise (classify(wrapped) or wrapped) from exc

    async def _open_pool(self) -> None:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if not self._open:
                # Connections are opened in the background: a database down at start-up
                # answers 503 on each request instead of failing the process.
                await self.pool.open(wait=False)
                self._open = True

    async def close(self) -> None:
        if self._open:
            await self.pool.close()
            self._open = False
