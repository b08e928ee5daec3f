"""`autostamp api` with two processes: one key cache and one rate limit as far as a caller can tell.

Each call opens a connection of its own, so the kernel spreads the calls over both processes'
sockets (16 calls all landing on one of two processes has odds of 1 in 32,768).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from autostamp.embedded import free_port, wait_for_port
from ledger import keys
from ledger.database import transaction
from tests.publisher_api.conftest import bearer, issue_key
from tests.webhooks.support import TEST_KEY

pytestmark = pytest.mark.slow

PROGRAMS = "/publisher.v1/loyalty-program/list"
CALLS = 16
PER_MINUTE = 600
BURST = 19


@pytest.fixture
def two_processes(engine: Engine, database_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "api.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "AUTOSTAMP_SECRET_KEY": TEST_KEY,
        "AUTOSTAMP_API_HOST": "127.0.0.1",
        "AUTOSTAMP_API_PORT": str(port),
        "AUTOSTAMP_API_PROCESSES": "2",
        "AUTOSTAMP_API_RATE_LIMIT_PER_MINUTE": str(PER_MINUTE),
        "AUTOSTAMP_API_RATE_LIMIT_BURST": str(BURST),
        "AUTOSTAMP_LOG_LEVEL": "info",
    }
    with log.open("wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "autostamp", "api"], env=env, stdout=output, stderr=output
        )
    try:
        wait_for_port("127.0.0.1", port, 60.0, "API")
        deadline = time.monotonic() + 60
        while log.read_text().count("listening on") < 2:  # both processes listen
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(30)


async def _statuses(base_url: str, token: str, count: int = CALLS) -> list[int]:
    async def call() -> int:
        async with httpx.AsyncClient(base_url=base_url, headers=bearer(token)) as client:
            return (await client.post(PROGRAMS, json={})).status_code

    return list(await asyncio.gather(*(call() for _ in range(count))))


async def test_a_revoked_key_is_refused_by_both_processes_within_a_second(
    two_processes: str, async_engine: AsyncEngine
) -> None:
    token = await issue_key(async_engine, keys.Scope.READ)
    assert await _statuses(two_processes, token) == [200] * CALLS  # both processes trust it

    async with transaction(async_engine) as conn:
        [key] = await keys.list_keys(conn)
        await keys.revoke_key(conn, key.id, key.created_at)
    await asyncio.sleep(1.0)

    assert await _statuses(two_processes, token) == [401] * CALLS


async def test_the_rate_limit_holds_across_both_processes(
    two_processes: str, async_engine: AsyncEngine
) -> None:
    token = await issue_key(async_engine, keys.Scope.READ)
    started = last_sent = time.monotonic()
    admitted = 0
    while time.monotonic() - started < 3.0:
        last_sent = time.monotonic()
        admitted += (await _statuses(two_processes, token)).count(200)
    ended = time.monotonic()

    # The bucket holds 1 + burst and refills at the rate; the last calls are answered
    # between `last_sent` and `ended`.
    at_most = 1 + BURST + (ended - started) * PER_MINUTE / 60
    at_least = 1 + BURST + (last_sent - started) * PER_MINUTE / 60
    assert 0.9 * at_least <= admitted <= at_most
