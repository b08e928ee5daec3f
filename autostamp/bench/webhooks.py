"""Webhook benchmark: deliveries per second to 1 endpoint, and to 50 of which one hangs.

A receiver process on 127.0.0.1 answers 204 at once on `/fast/...` and never answers on
`/slow` (each request is dropped after a bounded time). The database is `DATABASE_URL`'s
server (a scratch database, dropped afterwards) or an embedded PostgreSQL in a temporary
directory. The dispatcher runs with the default concurrency, the real signing, transport and
batched recording. `slow_endpoint_delay_ms` is how much later a probe event reaches a healthy
endpoint while the hanging one holds its share of requests, than it does with none hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import multiprocessing
import secrets
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from multiprocessing.connection import Connection

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from autostamp.bench.database import scratch_database
from autostamp.embedded import free_port
from autostamp.settings import WebhookSettings
from autostamp.wiring import delivery_config, run_dispatcher
from ledger.database import transaction
from ledger.events import CollectionRef, PurchaseRef, RewardTriggered, StampCollectionCreated
from ledger.outbox import enqueue_events
from ledger.sealing import Keyring
from ledger.webhook_endpoints import create_endpoint
from webhooks.config import DeliveryConfig
from webhooks.transport import SystemResolver
from webhooks.urls import NetworkPolicy, url_policy

LOOPBACK = NetworkPolicy.of("127.0.0.0/8", "::1/128")

HANG_S = 30.0  # the receiver drops a hung request after this, so nothing waits forever
RECEIVER_LIFETIME_S = 900.0
PROBES = 5
_FAST = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"


async def _serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    if head.startswith(b"POST /slow"):
        await asyncio.sleep(HANG_S)
        return False
    writer.write(_FAST)
    return True


async def _connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, ValueError):
        while await _serve_one(reader, writer):
            pass
    writer.close()


async def _receiver(port: int) -> None:
    server = await asyncio.start_server(_connection, "127.0.0.1", port, backlog=1024)
    async with server:
        await asyncio.sleep(RECEIVER_LIFETIME_S)


def serve_receiver(port: int, ready: Connection) -> None:
    """The receiver process: loopback only, and it ends by itself."""
    ready.send(True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_receiver(port))


@contextlib.contextmanager
def receiver_process() -> Iterator[int]:
    port = free_port()
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=serve_receiver, args=(port, child), daemon=True)
    process.start()
    try:
        parent.recv()
        time.sleep(0.5)
        yield port
    finally:
        process.terminate()
        process.join(10)


def _reward(n: int) -> RewardTriggered:
    now = datetime.now(UTC)
    collection = CollectionRef(
        collection_id=f"sc_{n}", program_id="lp_bench", member_id=f"m_{n}", qualifying_threshold=5
    )
    purchase = PurchaseRef(
        transaction_id=f"tx_{n}",
        purchase_id=f"p_{n}",
        amount=450,
        currency="GBP",
        merchant_id="mer_1",
        merchant_name="Coffee Co",
        occurred_at=now,
    )
    return RewardTriggered(
        timestamp=now,
        collection=collection,
        reward_id=f"rw_{uuid.uuid4().hex}",
        type="refund",
        amount=450,
        currency="GBP",
        cycle=1,
        purchase=purchase,
    )


def _probe() -> StampCollectionCreated:
    collection = CollectionRef(
        collection_id=f"sc_{uuid.uuid4().hex}",
        program_id="lp_bench",
        member_id="m_probe",
        qualifying_threshold=5,
    )
    return StampCollectionCreated(timestamp=datetime.now(UTC), collection=collection)


async def _endpoint(engine: AsyncEngine, url: str, event_type: str) -> None:
    local = url_policy(SystemResolver(), policy=LOOPBACK)
    async with transaction(engine) as conn:
        await create_endpoint(
            conn, url=url, event_types=[event_type], check_url=local, keyring=_keyring()
        )


async def _enqueue(engine: AsyncEngine, count: int) -> None:
    for start in range(0, count, 1000):
        async with transaction(engine) as conn:
            await enqueue_events(conn, [_reward(n) for n in range(start, min(count, start + 1000))])


async def _delivered(engine: AsyncEngine, url_like: str) -> int:
    async with engine.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT count(*) FROM webhook_deliveries d JOIN webhook_endpoints e"
                " ON e.id = d.endpoint_id WHERE d.status = 'delivered' AND e.url LIKE :like"
            ),
            {"like": url_like},
        )
        return int(found.scalar_one())


async def _until(engine: AsyncEngine, url_like: str, count: int, poll_s: float = 0.02) -> None:
    # Polling is the measurement: the database is where "delivered" is true.
    while True:
        if await _delivered(engine, url_like) >= count:
            return
        await asyncio.sleep(poll_s)


async def _rate(engine: AsyncEngine, started: float, count: int) -> float:
    await _until(engine, "%/fast/%", count, poll_s=0.1)
    return count / (time.perf_counter() - started)


async def _probe_latency_ms(engine: AsyncEngine) -> float:
    latencies = []
    for done in range(1, PROBES + 1):
        started = time.perf_counter()
        async with transaction(engine) as conn:
            await enqueue_events(conn, [_probe()])
        await _until(engine, "%/probe", done, poll_s=0.002)
        latencies.append((time.perf_counter() - started) * 1000)
    return statistics.median(latencies)


async def _scenario(
    url: str, port: int, config: DeliveryConfig, endpoints: int, slow: bool, messages: int
) -> tuple[float, float]:
    """Deliveries per second to the healthy endpoints, then the probe latency in ms."""
    engine = create_async_engine(url, pool_size=10)
    base = f"http://127.0.0.1:{port}"
    for n in range(endpoints - int(slow)):
        await _endpoint(engine, f"{base}/fast/{n}", "reward.triggered")
    if slow:
        await _endpoint(engine, f"{base}/slow", "reward.triggered")
    await _endpoint(engine, f"{base}/probe", "stamp_collection.created")
    await _enqueue(engine, messages)  # before the dispatcher starts: delivery alone is timed
    async with transaction(engine) as conn:
        # As a table in use has: a fresh one looks empty, and the claim's plan assumes so.
        await conn.execute(text("ANALYZE webhook_deliveries"))
    stop = asyncio.Event()
    started = time.perf_counter()
    dispatcher = asyncio.create_task(run_dispatcher(engine, config, stop))
    try:
        rate = await _rate(engine, started, messages * (endpoints - int(slow)))
        probe_ms = await _probe_latency_ms(engine)
    finally:
        stop.set()
        await dispatcher
        async with transaction(engine) as conn:
            tables = "webhook_attempts, webhook_deliveries, webhook_messages, webhook_endpoints"
            await conn.execute(text(f"TRUNCATE {tables}"))
        await engine.dispose()
    return rate, probe_ms


async def _bench(url: str, port: int, quick: bool, config: DeliveryConfig) -> None:
    messages_1 = 2_000 if quick else 20_000
    messages_50 = 40 if quick else 400
    rate_1, idle_ms = await _scenario(url, port, _one_endpoint(config), 1, False, messages_1)
    print(f"endpoints=1 deliveries={messages_1} deliveries_per_s={rate_1:.0f}")
    rate_50, slow_ms = await _scenario(url, port, config, 50, True, messages_50)
    print(f"endpoints=50 slow=1 deliveries={messages_50 * 49} deliveries_per_s={rate_50:.0f}")
    delay = max(0.0, slow_ms - idle_ms)
    print(f"probe_latency_ms_idle={idle_ms:.1f} probe_latency_ms_with_slow={slow_ms:.1f}")
    print(
        f"webhooks: deliveries_per_s_1={rate_1:.0f} deliveries_per_s_50={rate_50:.0f} "
        f"slow_endpoint_delay_ms={delay:.0f}"
    )


def _config() -> DeliveryConfig:
    settings = WebhookSettings(
        allowed_networks=("127.0.0.0/8", "::1/128"),  # the receiver is on loopback
        request_timeout_s=2.0,
        read_timeout_s=2.0,
        retry_schedule_s=(0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
    )
    return delivery_config(settings, _keyring())


@functools.cache
def _keyring() -> Keyring:
    """A key of this run only: its throwaway database goes with it."""
    return Keyring((secrets.token_bytes(32),))


def _one_endpoint(config: DeliveryConfig) -> DeliveryConfig:
    # The per-endpoint cap is a courtesy to receivers; with one endpoint it would measure the
    # cap, so that run lets the endpoint use every slot. The 50-endpoint run keeps the default.
    return dataclasses.replace(config, concurrency_per_endpoint=config.concurrency)


def run(quick: bool = False) -> None:
    """Print the figures as key=value lines, the headline last."""
    config = _config()
    print(
        f"concurrency={config.concurrency}"
        f" per_endpoint_1={_one_endpoint(config).concurrency_per_endpoint}"
        f" per_endpoint_50={config.concurrency_per_endpoint}"
        f" request_timeout_s={config.request_timeout_s:g} transport=httpx+aiohttp"
    )
    with scratch_database() as (url, _), receiver_process() as port:
        asyncio.run(_bench(url, port, quick, config))


if __name__ == "__main__":
    run()
