"""W11: sustained failure disables an endpoint, sporadic failure never does (W5: 410 at once).

The dispatcher and its sender read a fake clock, so days pass between two events; the
receiver is real, and so is the database. A failed delivery is retried only after 30 days
(of the fake clock), so each event below makes exactly one attempt.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from autostamp.settings import WebhookSettings
from ledger.database import transaction
from ledger.webhook_endpoints import enable_endpoint
from tests.webhooks.receiver import Receiver, Reply
from tests.webhooks.support import (
    TEST_KEYRING,
    FakeClock,
    add_endpoint,
    dispatching,
    enqueue,
    eventually,
    fast_settings,
    reward_triggered,
    rows,
    statuses,
)
from webhooks.health import EndpointRun, disable_reason, rfc3339_seconds
from webhooks.retries import Outcome
from webhooks.store import AttemptResult, Claim, ClaimRequest, SqlDeliveryStore

DAY = timedelta(days=1)
START = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
FIVE_DAYS = timedelta(days=5)


@pytest.fixture
def start() -> datetime:
    # The outbox stamps its rows with the database's clock: the fake one starts after it.
    return datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)


def settings(**overrides: Any) -> WebhookSettings:
    defaults: dict[str, Any] = {
        "retry_schedule_s": (0.0, 30 * 86400.0),
        "disable_after_s": FIVE_DAYS.total_seconds(),
    }
    return fast_settings(**(defaults | overrides))


@pytest.mark.parametrize(
    ("run", "reason"),
    [
        (EndpointRun("ep_A", None, None, gone=True), "410 Gone"),
        (EndpointRun("ep_A", START, START + 6 * DAY, gone=True), "410 Gone"),
        (
            EndpointRun("ep_A", START, START + 6 * DAY, gone=False),
            "failing since 2026-11-25T10:00:00Z",
        ),
        (EndpointRun("ep_A", START, START + FIVE_DAYS, gone=False), None),
        (EndpointRun("ep_A", START, START + DAY, gone=False), None),
        # The batch's failures all came before a success: nothing fails now.
        (EndpointRun("ep_A", START, None, gone=False), None),
        (EndpointRun("ep_A", None, None, gone=False), None),
    ],
)
def test_an_endpoint_is_given_up_on_when_gone_or_failing_for_longer_than_the_period(
    run: EndpointRun, reason: str | None
) -> None:
    assert disable_reason(run, FIVE_DAYS) == reason


def test_a_zero_period_never_gives_up_on_failures_but_still_on_gone() -> None:
    failing = EndpointRun("ep_A", START, START + 365 * DAY, gone=False)
    assert disable_reason(failing, timedelta(0)) is None
    assert disable_reason(EndpointRun("ep_A", None, None, gone=True), timedelta(0)) == "410 Gone"


def test_the_reason_names_the_start_in_utc_whole_seconds() -> None:
    paris = datetime(2026, 11, 25, 11, 0, 0, 654321, tzinfo=timezone(timedelta(hours=1)))
    assert rfc3339_seconds(paris) == "2026-11-25T10:00:00Z"


class Timeline:
    """Events sent one at a time, each at its own moment, to one endpoint of a real receiver.

    An attempt is written in the transaction that updates its endpoint: once it is there, so
    is what it did to the endpoint.
    """

    def __init__(self, engine: AsyncEngine, receiver: Receiver, clock: FakeClock) -> None:
        self.engine, self.receiver, self.clock = engine, receiver, clock
        self.sent = 0

    async def event_at(self, when: datetime, status: int) -> None:
        self.clock.now = when
        self.receiver.behaviour = lambda _: Reply(status)
        self.sent += 1
        await enqueue(self.engine, [reward_triggered(self.sent)])
        await eventually(lambda: self._attempted(self.sent))

    async def _attempted(self, n: int) -> bool:
        [row] = await rows(self.engine, "SELECT count(*) AS n FROM webhook_attempts")
        return int(row.n) >= n


async def endpoint_row(engine: AsyncEngine) -> Any:
    [row] = await rows(
        engine, "SELECT disabled_at, disabled_reason, failing_since FROM webhook_endpoints"
    )
    return row


def disabled_alerts(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "alert", None) == "webhook_endpoint_disabled"]


async def test_w11_an_endpoint_failing_for_longer_than_the_period_is_disabled(
    async_engine: AsyncEngine, receiver: Receiver, caplog: pytest.LogCaptureFixture, start: datetime
) -> None:
    await add_endpoint(async_engine, receiver.url())
    clock = FakeClock(start)
    timeline = Timeline(async_engine, receiver, clock)
    with caplog.at_level(logging.ERROR, logger="webhooks.dispatcher"):
        async with dispatching(async_engine, settings(), clock=clock):
            await timeline.event_at(start, 500)
            assert (await endpoint_row(async_engine)).failing_since == start
            for day in (2, 4, 5):  # five days exactly is not longer than five days
                await timeline.event_at(start + day * DAY, 503)
            assert (await endpoint_row(async_engine)).disabled_at is None
            await timeline.event_at(start + FIVE_DAYS + timedelta(hours=1), 500)
    endpoint = await endpoint_row(async_engine)
    assert endpoint.disabled_at == start + FIVE_DAYS + timedelta(hours=1)
    assert endpoint.disabled_reason == f"failing since {rfc3339_seconds(start)}"
    # Its deliveries end as a 410's do: none is left waiting for a retry.
    assert await statuses(async_engine) == ["endpoint_disabled"] * 5
    [alert] = disabled_alerts(caplog)
    assert alert.reason == f"failing since {rfc3339_seconds(start)}"  # type: ignore[attr-defined]


async def test_w11_sporadic_failures_with_successes_between_never_disable(
    async_engine: AsyncEngine, receiver: Receiver, caplog: pytest.LogCaptureFixture, start: datetime
) -> None:
    await add_endpoint(async_engine, receiver.url())
    clock = FakeClock(start)
    timeline = Timeline(async_engine, receiver, clock)
    # Ten days of failures, with a success on the fourth and the eighth day.
    with caplog.at_level(logging.ERROR, logger="webhooks.dispatcher"):
        async with dispatching(async_engine, settings(), clock=clock):
            for day in range(10):
                await timeline.event_at(start + day * DAY, 200 if day in (3, 7) else 500)
    endpoint = await endpoint_row(async_engine)
    assert endpoint.disabled_at is None
    assert endpoint.failing_since == start + 8 * DAY
    assert sorted(await statuses(async_engine)) == ["delivered"] * 2 + ["pending"] * 8
    assert disabled_alerts(caplog) == []


async def test_w11_a_success_ends_the_run_of_failures(
    async_engine: AsyncEngine, receiver: Receiver, start: datetime
) -> None:
    await add_endpoint(async_engine, receiver.url())
    clock = FakeClock(start)
    timeline = Timeline(async_engine, receiver, clock)
    async with dispatching(async_engine, settings(), clock=clock):
        await timeline.event_at(start, 500)
        assert (await endpoint_row(async_engine)).failing_since == start
        await timeline.event_at(start + DAY, 204)
        assert (await endpoint_row(async_engine)).failing_since is None
        await timeline.event_at(start + 6 * DAY, 500)
    endpoint = await endpoint_row(async_engine)
    assert endpoint.failing_since == start + 6 * DAY
    assert endpoint.disabled_at is None


async def test_w5_gone_disables_at_once_with_its_reason_and_an_alert(
    async_engine: AsyncEngine, receiver: Receiver, caplog: pytest.LogCaptureFixture, start: datetime
) -> None:
    await add_endpoint(async_engine, receiver.url())
    clock = FakeClock(start)
    timeline = Timeline(async_engine, receiver, clock)
    with caplog.at_level(logging.ERROR, logger="webhooks.dispatcher"):
        async with dispatching(async_engine, settings(), clock=clock):
            await timeline.event_at(start, 204)
            await timeline.event_at(start + DAY, 410)
    endpoint = await endpoint_row(async_engine)
    assert endpoint.disabled_at == start + DAY
    assert endpoint.disabled_reason == "410 Gone"
    assert sorted(await statuses(async_engine)) == ["delivered", "endpoint_disabled"]
    [alert] = disabled_alerts(caplog)
    assert alert.reason == "410 Gone"  # type: ignore[attr-defined]


async def test_w11_a_zero_period_keeps_a_failing_endpoint_on(
    async_engine: AsyncEngine, receiver: Receiver, start: datetime
) -> None:
    await add_endpoint(async_engine, receiver.url())
    clock = FakeClock(start)
    timeline = Timeline(async_engine, receiver, clock)
    async with dispatching(async_engine, settings(disable_after_s=0), clock=clock):
        for day in (0, 3, 6, 9):
            await timeline.event_at(start + day * DAY, 500)
    endpoint = await endpoint_row(async_engine)
    assert endpoint.disabled_at is None
    assert endpoint.failing_since == start
    assert await statuses(async_engine) == ["pending"] * 4


async def test_w11_an_endpoint_enabled_again_starts_counting_afresh(
    async_engine: AsyncEngine, receiver: Receiver, start: datetime
) -> None:
    created = await add_endpoint(async_engine, receiver.url())
    clock = FakeClock(start)
    timeline = Timeline(async_engine, receiver, clock)
    async with dispatching(async_engine, settings(), clock=clock):
        await timeline.event_at(start, 500)
        await timeline.event_at(start + 6 * DAY, 500)
        async with transaction(async_engine) as conn:
            # Nothing held resumes (a zero hold): only the run of failures is under test.
            enabled = await enable_endpoint(
                conn, created.endpoint.id, start + 7 * DAY, timedelta(0)
            )
        assert (enabled.disabled_reason, enabled.failing_since) == (None, None)
        await timeline.event_at(start + 8 * DAY, 500)
    endpoint = await endpoint_row(async_engine)
    assert endpoint.disabled_at is None
    assert endpoint.failing_since == start + 8 * DAY


async def claim_all(
    store: SqlDeliveryStore, engine: AsyncEngine, n: int, now: datetime
) -> list[Claim]:
    await enqueue(engine, [reward_triggered(i) for i in range(n)])
    return await store.claim(
        ClaimRequest(now=now, limit=n, per_endpoint=n, busy={}, first_delay_s=0.0, lease_s=60.0)
    )


def answered(claim: Claim, at: datetime, status_code: int) -> AttemptResult:
    ok = 200 <= status_code < 300
    outcome = Outcome("delivered") if ok else Outcome("pending", at + 30 * DAY)
    return AttemptResult(claim, at, status_code, 10, None, None, outcome)


async def test_in_one_batch_only_the_failures_after_its_last_success_begin_a_run(
    async_engine: AsyncEngine, start: datetime
) -> None:
    await add_endpoint(async_engine, "http://127.0.0.1:9/hook")
    store = SqlDeliveryStore(async_engine, disable_after=FIVE_DAYS, keyring=TEST_KEYRING)
    first, second, third = await claim_all(store, async_engine, 3, start)
    hour = timedelta(hours=1)
    batch = [answered(third, start + 2 * hour, 500), answered(second, start + hour, 200)]
    await store.record([*batch, answered(first, start, 500)], start + 3 * hour)
    assert (await endpoint_row(async_engine)).failing_since == start + 2 * hour


async def test_a_success_recorded_late_does_not_end_a_run_that_began_after_it(
    async_engine: AsyncEngine, start: datetime
) -> None:
    await add_endpoint(async_engine, "http://127.0.0.1:9/hook")
    store = SqlDeliveryStore(async_engine, disable_after=FIVE_DAYS, keyring=TEST_KEYRING)
    early, late = await claim_all(store, async_engine, 2, start)
    await store.record([answered(late, start + DAY, 500)], start + DAY)
    await store.record([answered(early, start, 200)], start + DAY)
    assert (await endpoint_row(async_engine)).failing_since == start + DAY


async def test_the_store_reports_an_endpoint_disabled_only_once(
    async_engine: AsyncEngine, start: datetime
) -> None:
    created = await add_endpoint(async_engine, "http://127.0.0.1:9/hook")
    store = SqlDeliveryStore(async_engine, disable_after=FIVE_DAYS, keyring=TEST_KEYRING)
    first, second, third = await claim_all(store, async_engine, 3, start)
    assert (await store.record([answered(first, start, 500)], start)).disabled == {}
    later = start + 6 * DAY
    recorded = await store.record([answered(second, later, 500)], later)
    assert recorded.disabled == {created.endpoint.id: f"failing since {rfc3339_seconds(start)}"}
    assert (await store.record([answered(third, later, 500)], later)).disabled == {}
