"""The one failure policy: what a database error means, and how long infrastructure is retried.

Every failure is one of two kinds:

- **the event is bad** (`DataRefused`, or a validation error): it goes to the dead letters
  with its reason, and the stream goes on;
- **the infrastructure is failing** (`InfrastructureError`): the work is retried with
  backoff, and if it still fails the process stops without acknowledging anything, with a
  log line that says what to fix. No infrastructure failure ever dead-letters an event.

Database errors are told apart by SQLSTATE class, never by message text; an error we do not
recognise counts as infrastructure, so the unknown never costs an event.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ledger.errors import (
    AutostampError,
    DataRefused,
    InfrastructureError,
    StorageError,
    StorageRefused,
    StorageUnavailable,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

_SCHEMA_BEHIND = "the schema is behind this version of autostamp: run `autostamp db upgrade`"
# SQLSTATE (or class, by its first two characters) -> (kind, hint for the operator).
_REFUSED: dict[str, str] = {
    "25006": "the database is read-only (a standby, or after a failover?): "
    "point DATABASE_URL at the primary",
    "42501": "permission denied: grant the database role autostamp uses the privileges "
    "it needs on the ledger's tables",
    "42P01": _SCHEMA_BEHIND,
    "42703": _SCHEMA_BEHIND,
    "42883": _SCHEMA_BEHIND,
    "42704": _SCHEMA_BEHIND,
    "53100": "the database server's disk is full",
    "28": "the database refused the credentials in DATABASE_URL",
    "3D": "the database named in DATABASE_URL does not exist",
    "XX": "the database reports an internal error or corruption",
}
_UNAVAILABLE = ("08", "40001", "40P01", "57P01", "57P02", "57P03", "57014", "53300", "53200")
_DATA = ("22", "23")


def classify(exc: BaseException) -> AutostampError | None:
    """Our error for a driver error (to raise `from` it), or None if it is not the database's."""
    if isinstance(exc, PoolTimeout | DisconnectionError):
        return StorageUnavailable(f"database unavailable: {exc}")
    if not isinstance(exc, DBAPIError):
        return None
    code = getattr(exc.orig, "sqlstate", None) or ""
    # The primary message only: the driver's other lines repeat the statement and the values.
    detail = f"{type(exc.orig).__name__}: {_primary(exc)}"
    lost = exc.connection_invalidated or (not code and _is_connection_error(exc))
    if lost or code.startswith(_UNAVAILABLE):
        return StorageUnavailable(f"database unavailable ({code or 'no sqlstate'}): {detail}")
    if code.startswith(_DATA) or (not code and _is_data_error(exc)):
        return DataRefused(f"the database refused a value ({code or 'client'}): {_primary(exc)}")
    hint = _REFUSED.get(code) or _REFUSED.get(code[:2]) or f"unexpected database error {code}"
    return StorageRefused(f"database refused the work ({code or 'no sqlstate'}): {detail}", hint)


def _primary(exc: DBAPIError) -> str:
    primary = getattr(getattr(exc.orig, "diag", None), "message_primary", None)
    if primary:
        return str(primary)
    lines = str(exc.orig).splitlines()
    return lines[0] if lines else type(exc.orig).__name__


def _is_connection_error(exc: DBAPIError) -> bool:
    name = type(exc.orig).__name__
    return name in {"OperationalError", "InterfaceError"}


def _is_data_error(exc: DBAPIError) -> bool:
    # psycopg refuses some values before sending them, e.g. a NUL byte in a text parameter.
    return type(exc.orig).__name__ == "DataError"


@dataclass(frozen=True)
class Backoff:
    """Exponential waits with jitter between attempts at work that failed on infrastructure."""

    attempts: int = 8
    first_delay_s: float = 0.2
    max_delay_s: float = 10.0
    jitter: float = 0.2

    def delays(self) -> list[float]:
        steps = (self.first_delay_s * 2**n for n in range(self.attempts - 1))
        spread = (1 + random.uniform(-self.jitter, self.jitter) for _ in range(self.attempts))
        return [min(step, self.max_delay_s) * k for step, k in zip(steps, spread, strict=False)]


async def retrying(work: Callable[[], Awaitable[T]], backoff: Backoff, what: str) -> T:
    """Run `work`, again after each infrastructure failure, until `backoff` runs out."""
    for delay in [*backoff.delays(), None]:
        try:
            return await work()
        except InfrastructureError as exc:
            if delay is None:
                raise
            log.warning("%s failed (%s); trying again in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def operator_message(exc: InfrastructureError) -> str:
    """The log line for an operator when the retries run out."""
    kind = "storage" if isinstance(exc, StorageError) else "broker"
    fix = f" To fix: {exc.hint}." if exc.hint else ""
    return f"{kind} failure after retries: {exc}.{fix}"
