"""What follows an attempt: delivered, retried later, dead, or the endpoint gone. Pure."""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from datetime import datetime, timedelta

# Standard Webhooks: these ask the sender to slow down, and may say for how long.
THROTTLING = frozenset({429, 503})
GONE = 410


@dataclass(frozen=True)
class Outcome:
    """The delivery's state after an attempt; `next_attempt_at` is set while it is pending."""

    status: str
    next_attempt_at: datetime | None = None

    @property
    def endpoint_gone(self) -> bool:
        return self.status == "endpoint_disabled"


@dataclass(frozen=True)
class DeliverySchedule:
    """The schedule (one wait per attempt, the first from the event), its jitter and caps."""

    schedule: tuple[float, ...]
    jitter: float
    max_retry_after_s: float

    def first_delay(self) -> float:
        return self.schedule[0]

    def delay(self, attempts_made: int, rand: float) -> float | None:
        """Seconds until attempt `attempts_made + 1`, None once every attempt is spent.

        `rand` in [0, 1) moves the wait by up to `jitter` of it either way, so receivers that
        failed together are not retried together.
        """
        if attempts_made >= len(self.schedule):
            return None
        return self.schedule[attempts_made] * (1 + self.jitter * (2 * rand - 1))


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """The wait a Retry-After header asks for (seconds or an HTTP date); None if unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def assess_attempt(
    schedule: DeliverySchedule,
    *,
    status_code: int | None,
    retry_after: float | None,
    attempts_made: int,
    now: datetime,
    rand: float,
) -> Outcome:
    """Only a 2xx delivers; 410 gives up on the endpoint; anything else (3xx, no answer) fails."""
    if status_code is not None and 200 <= status_code < 300:
        return Outcome("delivered")
    if status_code == GONE:
        return Outcome("endpoint_disabled")
    delay = schedule.delay(attempts_made, rand)
    if delay is None:
        return Outcome("dead")
    if status_code in THROTTLING and retry_after is not None:
        delay = max(delay, min(retry_after, schedule.max_retry_after_s))
    return Outcome("pending", now + timedelta(seconds=delay))
