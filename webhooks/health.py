"""When to give up on an endpoint: it answered 410 Gone, or it failed too long. Pure.

Only sustained failure counts: any 2xx ends an endpoint's run of failures, so sporadic
failures never disable it (Svix's rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ledger.events import rfc3339

GONE_REASON = "410 Gone"


@dataclass(frozen=True)
class EndpointRun:
    """An endpoint after a batch of attempts: its run of failures, and what the batch saw.

    `failing_since` is when the run began (None after a success); `failed_at` is the batch's
    latest failure after its latest success; `gone` is whether it answered 410 Gone.
    """

    endpoint_id: str
    failing_since: datetime | None
    failed_at: datetime | None
    gone: bool


def disable_reason(run: EndpointRun, disable_after: timedelta) -> str | None:
    """Why the endpoint is to be disabled now, or None; a zero `disable_after` keeps it on."""
    if run.gone:
        return GONE_REASON
    if not disable_after or run.failing_since is None or run.failed_at is None:
        return None
    if run.failed_at - run.failing_since > disable_after:
        return f"failing since {rfc3339_seconds(run.failing_since)}"
    return None


def rfc3339_seconds(moment: datetime) -> str:
    """`2026-11-25T10:00:00Z`: RFC 3339 in UTC, to the whole second."""
    return rfc3339(moment.replace(microsecond=0))
