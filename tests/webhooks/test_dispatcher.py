"""Delivery faults W1-W10 against a real receiver on 127.0.0.1 and the real database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook

from autostamp.wiring import delivery_config
from ledger.database import transaction
from ledger.outbox import enqueue_events
from ledger.webhook_deliveries import redeliver_message
from tests.webhooks.receiver import Received, Receiver, Reply
from tests.webhooks.support import (
    TEST_KEYRING,
    StubResolver,
    add_endpoint,
    all_settled,
    dispatching,
    enqueue,
    eventually,
    fast_settings,
    reward_triggered,
    rows,
    stamp_collected,
    statuses,
)
from webhooks.attempts import Sender
from webhooks.dispatcher import Dispatcher
from webhooks.metrics import Backlog, DispatcherMetrics
from webhooks.store import AttemptResult, Claim, ClaimRequest, Recorded, SqlDeliveryStore
from webhooks.transport import webhook_transport


def failing_then(status: int, failures: int) -> object:
    calls = {"n": 0}

    def behaviour(_: Received) -> Reply:
        calls["n"] += 1
        return Reply(500) if calls["n"] <= failures else Reply(status)

    return behaviour


async def attempts(engine: AsyncEngine) -> list[tuple[int | None, str | None]]:
    found = await rows(
        engine, "SELECT status_code, error FROM webhook_attempts ORDER BY attempted_at, id"
    )
    return [(row.status_code, row.error) for row in found]


async def test_w1_failure_then_success_resends_same_id_and_body_with_a_new_timestamp(
    async_engine: AsyncEngine, receiver: Receiver
) -> None:
    endpoint = await add_endpoint(async_engine, receiver.url())
    calls: list[Received] = []

    def behaviour(request: Received) -> Reply:
        calls.append(request)
        return Reply(500) if len(calls) == 1 else Reply(200)

    receiver.behaviour = behaviour
    await enqueue(async_engine, [reward_triggered()])
    async with dispatching(async_engine, fast_settings(retry_schedule_s=(0.0, 1.1, 1.0))):
        await eventually(lambda: all_settled(async_engine))
    assert await statuses(async_engine) == ["delivered"]
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    assert first.headers["webhook-timestamp"] != second.headers["webhook-timestamp"]
    for request in receiver.received:
        Webhook(endpoint.secret).verify(request.body, request.headers)
    assert await attempts(async_engine) == [(500, None), (200, None)]


async def test_w2_always_failing_ends_dead_after_one_attempt_per_schedule_entry_and_alerts(
    async_engine: AsyncEngine, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    await add_endpoint(async_engine, receiver.url())
    receiver.behaviour = lambda _: Reply(500)
    await enqueue(async_engine, [reward_triggered()])
    settings = fast_settings(retry_schedule_s=(0.0, 0.02, 0.03))
    with caplog.at_level(logging.ERROR, logger="webhooks.dispatcher"):
        async with dispatching(async_engine, settings):
            await eventually(lambda: all_settled(async_engine))
    assert await statuses(async_engine) == ["dead"]
    assert len(receiver.received) == 3
    assert await attempts(async_engine) == [(500, None)] * 3
    alerts = [r for r in caplog.records if getattr(r, "alert", None) == "webhook_delivery_dead"]
    assert len(alerts) == 1


async def test_w2_a_dead_message_is_redelivered_with_its_id_and_its_history_kept(
    async_engine: AsyncEngine, receiver: Receiver
) -> None:
    await add_endpoint(async_engine, receiver.url())
    receiver.behaviour = lambda _: Reply(500)
    await enqueue(async_engine, [reward_triggered()])
    settings = fast_settings(retry_schedule_s=(0.0, 0.01))
    async with dispatching(async_engine, settings):
        await eventually(lambda: all_settled(async_engine))
        receiver.behaviour = lambda _: Reply(200)
        message_id = receiver.received[0].headers["webhook-id"]
        async with transaction(async_engine) as conn:
            assert await redeliver_message(conn, message_id, datetime.now(UTC)) == 1
        await eventually(lambda: all_settled(async_engine))
    assert await statuses(async_engine) == ["delivered"]
    assert {r.headers["webhook-id"] for r in receiver.received} == {message_id}
    assert [code for code, _ in await attempts(async_engine)] == [500, 500, 200]


@pytest.mark.parametrize(
    "reply", [Reply(hang=True), Reply(trickle_s=0.1)], ids=["hangs", "trickles"]
)
async def test_w3_a_receiver_that_never_finishes_fails_at_the_deadline(
    async_engine: AsyncEngine, receiver: Receiver, reply: Reply
) -> None:
    await add_endpoint(async_engine, receiver.url())
    receiver.behaviour = lambda _: reply
    await enqueue(async_engine, [reward_triggered()])
    settings = fast_settings(retry_schedule_s=(0.0,), request_timeout_s=0.5, read_timeout_s=1.0)
    async with dispatching(async_engine, settings):
        await eventually(lambda: all_settled(async_engine), timeout_s=5)
    [attempt] = await rows(async_engine, "SELECT * FROM webhook_attempts")
    assert attempt.status_code is None
    assert attempt.error == "no complete answer within 0.5s"
    assert 450 <= attempt.latency_ms < 1500


async def test_w4_a_hanging_endpoint_does_not_delay_the_others(
    async_engine: AsyncEngine, receiver: Receiver
) -> None:
    await add_endpoint(async_engine, receiver.url("/slow"))
    await add_endpoint(async_engine, receiver.url("/fast"))
    receiver.behaviour = lambda r: Reply(hang=True) if r.path == "/slow" else Reply(200)
    settings = fast_settings(
        concurrency=8, concurrency_per_endpoint=4, request_timeout_s=3.0, lease_s=10.0
    )
    async with dispatching(async_engine, settings):
        started = time.monotonic()
        await enqueue(async_engine, [reward_triggered(n) for n in range(40)])
        await eventually(lambda: _fast_done(async_engine), timeout_s=2.5)
        elapsed = time.monotonic() - started
        assert len(receiver.on("/slow")) == 4  # only its own share is stuck
    assert elapsed < 2.0
    assert len(receiver.on("/fast")) == 40


async def _fast_done(engine: AsyncEngine) -> bool:
    delivered = await rows(
        engine,
        "SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id"
        " WHERE e.url LIKE '%/fast' AND d.status = 'delivered'",
    )
    return len(delivered) == 40


async def test_w5_gone_disables_the_endpoint_and_ends_its_deliveries(
    async_engine: AsyncEngine, receiver: Receiver
) -> None:
    endpoint = await add_endpoint(async_engine, receiver.url())
    receiver.behaviour = lambda _: Reply(410)
    await enqueue(async_engine, [reward_triggered(n) for n in range(5)])
    async with dispatching(async_engine, fast_settings(concurrency_per_endpoint=1)):
        await eventually(lambda: all_settled(async_engine))
    assert len(receiver.received) == 1
    assert await statuses(async_engine) == ["endpoint_disabled"] * 5
    [row] = await rows(
        async_engine,
        "SELECT disabled_at FROM webhook_endpoints WHERE id = :id",
        id=endpoint.endpoint.id,
    )
    assert row.disabled_at is not None


@pytest.mark.parametrize("status", [429, 503])
async def test_w6_retry_after_is_honoured(
    async_engine: AsyncEngine, receiver: Receiver, status: int
) -> None:
    await add_endpoint(async_engine, receiver.url())
    calls: list[Received] = []

    def behaviour(request: Received) -> Reply:
        calls.append(request)
        return Reply(status, headers={"retry-after": "1"}) if len(calls) == 1 else Reply(200)

    receiver.behaviour = behaviour
    await enqueue(async_engine, [reward_triggered()])
    async with dispatching(async_engine, fast_settings(retry_schedule_s=(0.0, 0.01))):
        await eventually(lambda: all_settled(async_engine), timeout_s=5)
    first, second = receiver.received
    assert second.at - first.at >= 1.0
    assert await statuses(async_engine) == ["delivered"]


async def test_w7_a_redirect_is_not_followed_and_counts_as_a_failure(
    async_engine: AsyncEngine, receiver: Receiver
) -> None:
    await add_endpoint(async_engine, receiver.url("/hook"))
    locations = ["http://169.254.169.254/latest/meta-data/", receiver.url("/landing")]
    receiver.behaviour = lambda _: Reply(302, {"location": locations[len(receiver.received) % 2]})
    await enqueue(async_engine, [reward_triggered(1), reward_triggered(2)])
    settings = fast_settings(retry_schedule_s=(0.0,))
    async with dispatching(async_engine, settings):
        await eventually(lambda: all_settled(async_engine))
    assert [r.path for r in receiver.received] == ["/hook", "/hook"]
    assert await statuses(async_engine) == ["dead"] * 2
    assert {code for code, _ in await attempts(async_engine)} == {302}


class CrashBeforeRecording:
    """A store whose process dies after the HTTP answer, before the attempt is written."""

    def __init__(self, inner: SqlDeliveryStore) -> None:
        self.inner = inner

    async def claim(self, request: ClaimRequest) -> list[Claim]:
        return await self.inner.claim(request)

    async def record(self, results: Sequence[AttemptResult], now: datetime) -> Recorded:
        raise RuntimeError("dispatcher killed")

    async def release(self, claims: Sequence[Claim], now: datetime) -> None:
        await self.inner.release(claims, now)

    async def forget_expired_secrets(self, now: datetime) -> int:
        return await self.inner.forget_expired_secrets(now)

    async def backlog(self) -> Backlog:
        return await self.inner.backlog()


async def test_w8_a_crash_after_the_answer_resends_with_the_same_id_after_the_lease(
    async_engine: AsyncEngine, receiver: Receiver
) -> None:
    await add_endpoint(async_engine, receiver.url())
    await enqueue(async_engine, [reward_triggered()])
    settings = fast_settings(request_timeout_s=0.5, lease_s=1.2)
    config = delivery_config(settings, TEST_KEYRING)
    async with webhook_transport(config, StubResolver()) as transport:
        crashing = Dispatcher(
            CrashBeforeRecording(
                SqlDeliveryStore(async_engine, disable_after=timedelta(0), keyring=TEST_KEYRING)
            ),
            Sender.from_config(transport, config),
            config,
        )
        with pytest.raises(ExceptionGroup):
            await crashing.run(asyncio.Event())
    assert len(receiver.received) == 1
    assert await statuses(async_engine) == ["pending"]
    async with dispatching(async_engine, settings):
        await eventually(lambda: all_settled(async_engine))
    assert await statuses(async_engine) == ["delivered"]
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    # Not before the lease ends; the lease counts from the claim, a little before the send.
    assert second.at - first.at >= 1.0


@pytest.mark.parametrize("dispatchers", [2, 4])
async def test_w9_dispatchers_side_by_side_send_each_delivery_once(
    async_engine: AsyncEngine, receiver: Receiver, dispatchers: int
) -> None:
    await add_endpoint(async_engine, receiver.url("/a"))
    await add_endpoint(async_engine, receiver.url("/b"))
    await enqueue(async_engine, [reward_triggered(n) for n in range(150)])
    settings = fast_settings(concurrency=16, concurrency_per_endpoint=8)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(dispatchers):
            await stack.enter_async_context(dispatching(async_engine, settings))
        await eventually(lambda: all_settled(async_engine))
    sent = Counter((r.path, r.headers["webhook-id"]) for r in receiver.received)
    assert len(sent) == 300
    assert set(sent.values()) == {1}
    assert await statuses(async_engine) == ["delivered"] * 300


async def test_w10_rows_committed_out_of_order_are_all_delivered(
    async_engine: AsyncEngine, receiver: Receiver
) -> None:
    await add_endpoint(async_engine, receiver.url())
    async with dispatching(async_engine, fast_settings()):
        async with async_engine.connect() as early, async_engine.connect() as late:
            await early.begin()
            await enqueue_events(early, [stamp_collected(1)])
            await late.begin()
            await enqueue_events(late, [stamp_collected(2)])
            await late.commit()
            await eventually(lambda: _count_received(receiver, 1))
            await asyncio.sleep(0.2)  # the dispatcher has looked past the open transaction
            await early.commit()
        await eventually(lambda: all_settled(async_engine))
    assert await statuses(async_engine) == ["delivered", "delivered"]
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 2


async def _count_received(receiver: Receiver, n: int) -> bool:
    return len(receiver.received) >= n


def _samples(metrics: DispatcherMetrics) -> dict[str, float]:
    return {
        sample.name + str(sorted(sample.labels.items()) or ""): sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
    }


async def test_the_dispatcher_counts_attempts_by_outcome_and_reads_the_backlog(
    async_engine: AsyncEngine, receiver: Receiver
) -> None:
    await add_endpoint(async_engine, receiver.url(path="/good"))
    await add_endpoint(async_engine, receiver.url(path="/bad"))
    receiver.behaviour = lambda request: Reply(200 if request.path == "/good" else 500)
    await enqueue(async_engine, [reward_triggered()])
    metrics = DispatcherMetrics()
    settings = fast_settings(retry_schedule_s=(0.0, 0.02))
    async with dispatching(async_engine, settings, metrics=metrics):
        await eventually(lambda: all_settled(async_engine))
    counted = _samples(metrics)
    outcome = "autostamp_webhook_deliveries_total[('outcome', '%s')]"
    assert counted[outcome % "delivered"] == 1
    assert counted[outcome % "pending"] == 1  # the bad endpoint's first attempt, retried
    assert counted[outcome % "dead"] == 1
    # Read as the dispatcher started: both deliveries waiting, none dead yet.
    assert counted["autostamp_webhook_queue_depth"] == 2
    assert counted["autostamp_webhook_dead"] == 0
    store = SqlDeliveryStore(async_engine, disable_after=timedelta(days=5), keyring=TEST_KEYRING)
    after = await store.backlog()
    assert (after.pending, after.oldest_pending_at, after.held, after.dead) == (0, None, 0, 1)
