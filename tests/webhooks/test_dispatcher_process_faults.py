"""The dispatcher as users run it, killed or left without its database: no webhook is lost.

A real `autostamp dispatcher` process, a real receiver, a real PostgreSQL. Delivery is at
least once: a message whose answer came back before a kill may come again, always with the
same `webhook-id` and the same body, and every attempt verifies with the Standard Webhooks
library (FAULTS W8, INV-4, INV-5).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from standardwebhooks import Webhook

from autostamp.embedded import EmbeddedPostgres, free_port
from ledger import migrate
from tests.webhooks.receiver import Received, Receiver, Reply
from tests.webhooks.support import (
    TEST_KEY,
    add_endpoint,
    enqueue,
    eventually,
    rows,
    stamp_collected,
)

pytestmark = pytest.mark.slow


def dispatcher_environment(database_url: str) -> dict[str, str]:
    return os.environ | {
        "DATABASE_URL": database_url,
        "AUTOSTAMP_SECRET_KEY": TEST_KEY,
        "AUTOSTAMP_WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8",
        "AUTOSTAMP_WEBHOOKS_RETRY_SCHEDULE_S": "[0, 0.2, 0.2, 0.2, 0.2, 0.2]",
        "AUTOSTAMP_WEBHOOKS_JITTER": "0",
        "AUTOSTAMP_WEBHOOKS_CONNECT_TIMEOUT_S": "1",
        "AUTOSTAMP_WEBHOOKS_READ_TIMEOUT_S": "2",
        "AUTOSTAMP_WEBHOOKS_REQUEST_TIMEOUT_S": "2",
        "AUTOSTAMP_WEBHOOKS_LEASE_S": "5",
        "AUTOSTAMP_WEBHOOKS_POLL_INTERVAL_S": "0.05",
    }


@dataclass
class DispatcherProcess:
    """One `autostamp dispatcher`, its output in a log file shown when a test fails."""

    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None)

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            argv = [sys.executable, "-m", "autostamp", "dispatcher"]
            self.process = subprocess.Popen(argv, env=self.env, stdout=log, stderr=log)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.running():
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture
def dispatcher(database_url: str, tmp_path: Path) -> Iterator[DispatcherProcess]:
    process = DispatcherProcess(dispatcher_environment(database_url), tmp_path / "dispatcher.log")
    yield process
    process.stop()


def assert_each_message_arrived_signed_and_unchanged(
    received: list[Received], secret: str, message_ids: set[str]
) -> None:
    bodies: dict[str, bytes] = {}
    verifier = Webhook(secret)
    for request in received:
        verifier.verify(request.body, request.headers)
        message_id = request.headers["webhook-id"]
        assert bodies.setdefault(message_id, request.body) == request.body
    assert set(bodies) == message_ids


async def delivered(engine: AsyncEngine) -> set[str]:
    found = await rows(engine, "SELECT message_id, status FROM webhook_deliveries")
    return {r.message_id for r in found if r.status == "delivered"}


async def test_a_dispatcher_killed_mid_delivery_loses_nothing_and_resends_the_same_message(
    async_engine: AsyncEngine, receiver: Receiver, dispatcher: DispatcherProcess
) -> None:
    endpoint = await add_endpoint(async_engine, receiver.url())
    await enqueue(async_engine, [stamp_collected(n) for n in range(60)])
    ids = {r.id for r in await rows(async_engine, "SELECT id FROM webhook_messages")}
    # Every third message hangs the first time it is sent: the kill finds some in flight.
    seen: set[str] = set()

    def first_time_hangs(request: Received) -> Reply:
        message_id = request.headers["webhook-id"]
        first = message_id not in seen
        seen.add(message_id)
        return Reply(hang=first and int(message_id[-1], 36) % 3 == 0)

    receiver.behaviour = first_time_hangs
    dispatcher.start()
    await eventually(lambda: _at_least(receiver, 40), 30)
    dispatcher.kill()
    receiver.behaviour = lambda _: Reply(status=204)
    dispatcher.start()
    await eventually(lambda: _all_delivered(async_engine, ids), 60)
    assert dispatcher.running(), dispatcher.log()
    assert_each_message_arrived_signed_and_unchanged(receiver.received, endpoint.secret, ids)
    attempts = await rows(async_engine, "SELECT count(*) AS n FROM webhook_attempts")
    assert attempts[0].n >= len(ids)


@pytest.fixture
async def private_postgres(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedPostgres, str]]:
    """A PostgreSQL of this test alone, which it may stop and start."""
    server = EmbeddedPostgres(tmp_path / "postgres", free_port())
    server.start()
    url = server.url()
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    yield server, url
    server.stop()


async def test_postgres_restarted_under_the_dispatcher_delays_deliveries_but_loses_none(
    private_postgres: tuple[EmbeddedPostgres, str], receiver: Receiver, tmp_path: Path
) -> None:
    server, url = private_postgres
    engine = create_async_engine(url)
    endpoint = await add_endpoint(engine, receiver.url())
    process = DispatcherProcess(dispatcher_environment(url), tmp_path / "dispatcher.log")
    process.start()
    try:
        await enqueue(engine, [stamp_collected(n) for n in range(30)])
        await eventually(lambda: _at_least(receiver, 10), 30)
        await engine.dispose()
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(2)
        await asyncio.to_thread(server.start)
        await enqueue(engine, [stamp_collected(n) for n in range(30, 60)])
        ids = {r.id for r in await rows(engine, "SELECT id FROM webhook_messages")}
        await eventually(lambda: _all_delivered(engine, ids), 90)
        assert process.running(), process.log()
        assert_each_message_arrived_signed_and_unchanged(receiver.received, endpoint.secret, ids)
    finally:
        process.stop()
        await engine.dispose()


async def _at_least(receiver: Receiver, n: int) -> bool:
    return len(receiver.received) >= n


async def _all_delivered(engine: AsyncEngine, ids: set[str]) -> bool:
    return await delivered(engine) == ids
