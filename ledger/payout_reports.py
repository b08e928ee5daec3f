"""What a payout report does to a reward's payout: the rule alone, pure, no I/O.

The payout system reports each attempt it made: paid, or failed with a reason. Reports may
arrive twice and in any order, so the rule depends only on the set of reports:

- **paid is final.** Money that went out is not unmade by a late failure, and a success of
  an earlier attempt counts even when a retry followed it. The earliest success reported
  gives the time it was paid.
- **A failure counts only for the current attempt**, and the latest failure (by the time the
  payout system reported it) gives the reason; a failure of an attempt already retried is
  stale.
- A report for an attempt that was never published is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

PayoutStatus = Literal["triggered", "paid", "failed"]
Outcome = Literal["paid", "failed"]


@dataclass(frozen=True)
class PayoutState:
    """A reward's payout: its status, the attempt under way, and the last report applied."""

    status: PayoutStatus
    attempt: int
    reason: str | None = None
    reported_at: datetime | None = None


@dataclass(frozen=True)
class PayoutReport:
    """One report of the payout system about one attempt."""

    attempt: int
    outcome: Outcome
    reported_at: datetime
    reason: str | None = None


class UnknownAttempt(ValueError):
    """A report names an attempt that was never published."""


def apply_report(state: PayoutState, report: PayoutReport) -> PayoutState | None:
    """The payout after `report`, or None when the report changes nothing."""
    if report.attempt < 1 or report.attempt > state.attempt:
        raise UnknownAttempt(
            f"attempt {report.attempt} was never published (the current one is {state.attempt})"
        )
    if state.status == "paid":
        earlier = (
            report.outcome == "paid"
            and state.reported_at
            and report.reported_at < state.reported_at
        )
        return PayoutState("paid", state.attempt, None, report.reported_at) if earlier else None
    if report.outcome == "paid":
        return PayoutState("paid", state.attempt, None, report.reported_at)
    if report.attempt < state.attempt:
        return None  # a failure of an attempt already retried
    if state.status == "failed" and state.reported_at and report.reported_at <= state.reported_at:
        return None
    return PayoutState("failed", state.attempt, report.reason, report.reported_at)


def retried(state: PayoutState) -> PayoutState | None:
    """The payout after a retry is asked for: only a failed one can be retried."""
    if state.status != "failed":
        return None
    return PayoutState("triggered", state.attempt + 1)
