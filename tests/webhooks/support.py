"""Events, endpoints, a stub resolver and a running dispatcher for the webhook tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from autostamp.settings import WebhookSettings
from autostamp.wiring import delivery_config, run_dispatcher
from ledger.database import transaction
from ledger.events import (
    EVENT_TYPES,
    CollectionRef,
    OutboxEvent,
    PurchaseRef,
    RewardTriggered,
    StampCollected,
)
from ledger.outbox import enqueue_events
from ledger.sealing import Keyring
from ledger.webhook_endpoints import EndpointWithSecret, create_endpoint
from webhooks.metrics import DispatcherMetrics
from webhooks.urls import NetworkPolicy, url_policy

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
# The keys that seal the endpoints' secrets in these tests.
TEST_KEY = "dGVzdC1rZXktb2YtdGhlLXdlYmhvb2stdGVzdHMtLS0="
TEST_KEYRING = Keyring.from_text(TEST_KEY)


class StubResolver:
    """Answers from a table; a name with several answers gives them in turn, the last repeats."""

    def __init__(self, table: dict[str, Sequence[Sequence[str]]] | None = None) -> None:
        self.table = dict(table or {})
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        answers = self.table.get(host)
        if not answers:
            raise OSError(f"{host}: no such name")
        index = min(self.asked.count(host), len(answers)) - 1
        return answers[index]


class FakeClock:
    """The time a dispatcher and its sender read: it moves only when the test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def fast_settings(**overrides: Any) -> WebhookSettings:
    """Settings with a compressed schedule and short timeouts, so the suite stays fast."""
    base: dict[str, Any] = {
        "retry_schedule_s": (0.0, 0.05, 0.05),
        "jitter": 0.0,
        "connect_timeout_s": 0.5,
        "read_timeout_s": 1.0,
        "request_timeout_s": 1.0,
        "lease_s": 5.0,
        "poll_interval_s": 0.02,
        "allowed_networks": ("127.0.0.0/8", "::1/128"),
        "concurrency": 32,
        "concurrency_per_endpoint": 8,
    }
    return WebhookSettings(**(base | overrides))


def collection(n: int = 1) -> CollectionRef:
    return CollectionRef(
        collection_id=f"sc_{n}", program_id="lp_coffee", member_id=f"m_{n}", qualifying_threshold=5
    )


def purchase(n: int = 1, merchant_name: str = "Coffee Co") -> PurchaseRef:
    return PurchaseRef(
        transaction_id=f"tx_{n}",
        purchase_id=f"p_{n}",
        amount=450,
        currency="GBP",
        merchant_id="mer_1",
        merchant_name=merchant_name,
        occurred_at=NOW,
    )


def stamp_collected(n: int = 1) -> StampCollected:
    return StampCollected(
        timestamp=NOW,
        collection=collection(n),
        purchase=purchase(n),
        cycle=1,
        unredeemed_purchases=1,
    )


def reward_triggered(n: int = 1) -> RewardTriggered:
    return RewardTriggered(
        timestamp=NOW,
        collection=collection(n),
        reward_id=f"rw_{n}",
        type="refund",
        amount=450,
        currency="GBP",
        cycle=1,
        purchase=purchase(n),
    )


async def add_endpoint(
    engine: AsyncEngine,
    url: str,
    event_types: Sequence[str] = EVENT_TYPES,
    resolver: StubResolver | None = None,
) -> EndpointWithSecret:
    allow_local = url_policy(
        resolver or StubResolver(), policy=NetworkPolicy.of("127.0.0.0/8", "::1/128")
    )
    async with transaction(engine) as conn:
        return await create_endpoint(
            conn, url=url, event_types=event_types, check_url=allow_local, keyring=TEST_KEYRING
        )


async def enqueue(engine: AsyncEngine, events: Sequence[OutboxEvent]) -> None:
    async with transaction(engine) as conn:
        await enqueue_events(conn, events)


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def statuses(engine: AsyncEngine) -> list[str]:
    return [row.status for row in await rows(engine, "SELECT status FROM webhook_deliveries")]


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.02)


async def all_settled(engine: AsyncEngine) -> bool:
    found = await statuses(engine)
    return bool(found) and "pending" not in found


@contextlib.asynccontextmanager
async def dispatching(
    engine: AsyncEngine,
    settings: WebhookSettings,
    resolver: StubResolver | None = None,
    clock: Callable[[], datetime] | None = None,
    metrics: DispatcherMetrics | None = None,
) -> AsyncIterator[asyncio.Event]:
    """A dispatcher running for the block; it is stopped, and its errors raised, at the end.

    With `clock`, the dispatcher and its sender read the time from it, and nothing else.
    """
    stop = asyncio.Event()
    config = delivery_config(settings, TEST_KEYRING)
    task = asyncio.create_task(
        run_dispatcher(
            engine,
            config,
            stop,
            resolver=resolver or StubResolver(),
            clock=clock,
            metrics=metrics,
        )
    )
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=settings.request_timeout_s + 15)
