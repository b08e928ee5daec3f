"""The retry schedule's arithmetic and the reading of Retry-After: tables and properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autostamp.settings import DEFAULT_RETRY_SCHEDULE, WebhookSettings
from webhooks.retries import DeliverySchedule, Outcome, assess_attempt, retry_after_s

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SCHEDULE = DeliverySchedule(schedule=(0.0, 10.0, 100.0), jitter=0.0, max_retry_after_s=3600.0)


def outcome(
    status: int | None, attempts_made: int = 1, retry_after: float | None = None
) -> Outcome:
    return assess_attempt(
        SCHEDULE,
        status_code=status,
        retry_after=retry_after,
        attempts_made=attempts_made,
        now=NOW,
        rand=0.5,
    )


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_only_2xx_delivers(status: int) -> None:
    assert outcome(status) == Outcome("delivered")


@pytest.mark.parametrize("status", [None, 199, 300, 301, 302, 304, 400, 401, 404, 500, 502])
def test_anything_else_is_retried_after_the_next_wait(status: int | None) -> None:
    assert outcome(status, attempts_made=1) == Outcome("pending", NOW + timedelta(seconds=10))
    assert outcome(status, attempts_made=2) == Outcome("pending", NOW + timedelta(seconds=100))


def test_the_attempt_that_uses_the_last_entry_is_the_last_one() -> None:
    assert outcome(500, attempts_made=3) == Outcome("dead")


def test_gone_gives_up_on_the_endpoint_whatever_the_attempt() -> None:
    assert outcome(410, attempts_made=1).endpoint_gone
    assert outcome(410, attempts_made=3).endpoint_gone


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_pushes_the_next_attempt_later_but_never_earlier(status: int) -> None:
    assert outcome(status, retry_after=60).next_attempt_at == NOW + timedelta(seconds=60)
    assert outcome(status, retry_after=1).next_attempt_at == NOW + timedelta(seconds=10)
    capped = outcome(status, retry_after=10**9).next_attempt_at
    assert capped == NOW + timedelta(seconds=3600)


def test_retry_after_on_a_plain_failure_is_not_a_reason_to_wait() -> None:
    assert outcome(500, retry_after=60).next_attempt_at == NOW + timedelta(seconds=10)


@given(
    attempts=st.integers(min_value=0, max_value=len(DEFAULT_RETRY_SCHEDULE) - 1),
    jitter=st.floats(min_value=0, max_value=1),
    rand=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_jitter_stays_within_its_fraction_of_the_wait(
    attempts: int, jitter: float, rand: float
) -> None:
    schedule = DeliverySchedule(DEFAULT_RETRY_SCHEDULE, jitter, 3600.0)
    wait = DEFAULT_RETRY_SCHEDULE[attempts]
    delay = schedule.delay(attempts, rand)
    assert delay is not None
    assert wait * (1 - jitter) - 1e-6 <= delay <= wait * (1 + jitter) + 1e-6


def test_the_default_schedule_spans_about_a_day_and_starts_at_once() -> None:
    assert DEFAULT_RETRY_SCHEDULE[0] == 0
    assert 20 * 3600 <= sum(DEFAULT_RETRY_SCHEDULE) <= 36 * 3600


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("Wed, 01 May 2024 12:01:30 GMT", 90.0),
        ("Wed, 01 May 2024 11:00:00 GMT", 0.0),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_or_an_http_date(
    header: str | None, expected: float | None
) -> None:
    assert retry_after_s(header, NOW) == expected


def test_a_lease_must_outlast_a_wait_for_a_slot_and_an_attempt() -> None:
    with pytest.raises(ValueError, match="twice request_timeout_s"):
        WebhookSettings(request_timeout_s=15.0, lease_s=30.0)
    assert WebhookSettings(request_timeout_s=15.0, lease_s=31.0).lease_s == 31.0
