"""One failure policy: what each database failure means, and how long it is retried."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ledger.errors import (
    AutostampError,
    DataRefused,
    InfrastructureError,
    StorageRefused,
    StorageUnavailable,
)
from ledger.failures import Backoff, classify, operator_message, retrying


def database_error(orig: Exception) -> DBAPIError:
    return DBAPIError.instance("INSERT ...", {"secret": "value"}, orig, psycopg.Error)


@pytest.mark.parametrize(
    ("driver_error", "kind", "hint"),
    [
        (errors.ReadOnlySqlTransaction("read-only"), StorageRefused, "read-only"),
        (errors.InsufficientPrivilege("denied"), StorageRefused, "grant"),
        (errors.UndefinedColumn("no column"), StorageRefused, "autostamp db upgrade"),
        (errors.UndefinedTable("no table"), StorageRefused, "autostamp db upgrade"),
        (errors.DiskFull("full"), StorageRefused, "disk is full"),
        (errors.RaiseException("a trigger said no"), StorageRefused, "unexpected"),
        (errors.DeadlockDetected("deadlock"), StorageUnavailable, ""),
        (errors.SerializationFailure("retry"), StorageUnavailable, ""),
        (errors.AdminShutdown("shutting down"), StorageUnavailable, ""),
        (errors.TooManyConnections("full"), StorageUnavailable, ""),
        (psycopg.OperationalError("connection refused"), StorageUnavailable, ""),
        (errors.NumericValueOutOfRange("out of range"), DataRefused, ""),
        (errors.CheckViolation("check"), DataRefused, ""),
        (psycopg.DataError("NUL bytes"), DataRefused, ""),
    ],
)
def test_each_database_failure_is_either_the_events_fault_or_the_infrastructures(
    driver_error: Exception, kind: type[AutostampError], hint: str
) -> None:
    ours = classify(database_error(driver_error))
    assert type(ours) is kind
    if isinstance(ours, InfrastructureError):
        assert hint in ours.hint
        assert ours.transient is (kind is StorageUnavailable)


def test_a_data_refusal_keeps_the_servers_reason_but_not_the_rows_values() -> None:
    orig = errors.CheckViolation('violates check constraint "amount_positive"\nDETAIL: (m1, 42)')
    ours = classify(database_error(orig))
    assert "amount_positive" in str(ours)
    assert "m1" not in str(ours) and "secret" not in str(ours)


def test_an_exhausted_pool_is_unavailable_and_anything_else_is_not_ours() -> None:
    assert isinstance(classify(PoolTimeout("pool limit")), StorageUnavailable)
    assert classify(KeyError("bug")) is None


async def test_infrastructure_failures_are_retried_until_the_backoff_runs_out() -> None:
    calls = []

    async def failing() -> None:
        calls.append(1)
        raise StorageUnavailable("down")

    with pytest.raises(StorageUnavailable):
        await retrying(failing, Backoff(attempts=3, first_delay_s=0.001), "test")
    assert len(calls) == 3


async def test_a_bad_event_is_not_retried() -> None:
    calls = []

    async def refused() -> None:
        calls.append(1)
        raise DataRefused("out of range")

    with pytest.raises(DataRefused):
        await retrying(refused, Backoff(attempts=5, first_delay_s=0.001), "test")
    assert len(calls) == 1


def test_waits_double_up_to_the_longest_with_some_jitter() -> None:
    delays = Backoff(attempts=6, first_delay_s=1.0, max_delay_s=5.0, jitter=0.1).delays()
    assert len(delays) == 5
    for delay, nominal in zip(delays, [1, 2, 4, 5, 5], strict=True):
        assert nominal * 0.9 <= delay <= nominal * 1.1


def test_the_operator_is_told_what_to_fix() -> None:
    refused = StorageRefused(
        "database refused the work (25006)", "point DATABASE_URL at the primary"
    )
    assert operator_message(refused).endswith("To fix: point DATABASE_URL at the primary.")
