"""Work that needs no valid key is bounded: failed authentications and readiness probes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher_api import create_app
from tests.publisher_api.conftest import FakeClock, bearer, config, no_webhook_urls

UNKNOWN_KEY = "ask_0123456789ab_" + "a" * 32
LIST = "/publisher.v1/loyalty-program/list"


@pytest.fixture
def key_lookups(async_engine: AsyncEngine) -> Iterator[list[str]]:
    """Every statement the API sends that reads the keys table."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        statement = args[2]
        if "api_keys" in statement:
            seen.append(statement)

    event.listen(async_engine.sync_engine, "before_cursor_execute", record)
    yield seen
    event.remove(async_engine.sync_engine, "before_cursor_execute", record)


async def test_an_address_that_keeps_failing_is_refused_before_any_key_is_looked_up(
    client: httpx.AsyncClient, admin_key: str, key_lookups: list[str], clock: FakeClock
) -> None:
    for _ in range(20):
        assert (await client.post(LIST, json={}, headers=bearer(UNKNOWN_KEY))).status_code == 401
    looked_up = len(key_lookups)
    assert looked_up >= 20

    refused = await client.post(LIST, json={}, headers=bearer(UNKNOWN_KEY))
    also_refused = await client.post(LIST, json={}, headers=bearer(admin_key))

    for response in (refused, also_refused):
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "rate_limited"
        assert "failed authentications" in response.json()["error"]["message"]
        assert int(response.headers["Retry-After"]) >= 1
    assert len(key_lookups) == looked_up

    clock.advance(3.0)  # 20 a minute: one failure's worth refills in 3 seconds
    assert (await client.post(LIST, json={}, headers=bearer(admin_key))).status_code == 200


async def test_a_missing_header_counts_as_a_failure_too(client: httpx.AsyncClient) -> None:
    statuses = [(await client.post(LIST, json={})).status_code for _ in range(21)]
    assert statuses == [401] * 20 + [429]


async def test_readiness_is_checked_once_per_few_seconds_however_often_it_is_asked(
    async_engine: AsyncEngine, clock: FakeClock
) -> None:
    calls: list[float] = []

    async def broker_check() -> bool:
        calls.append(clock())
        return True

    app = create_app(config(), async_engine, broker_check, no_webhook_urls, clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        answers = [(await client.get("/readyz")).status_code for _ in range(50)]
        assert answers == [200] * 50
        assert len(calls) == 1
        clock.advance(3.0)
        assert (await client.get("/readyz")).status_code == 200
        assert len(calls) == 2
