"""Per-key token buckets with the IETF draft headers, on an injected clock (FAULTS A5)."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from autostamp.settings import ApiSettings
from ledger.keys import Scope
from publisher_api import create_app
from publisher_api.ratelimit import TokenBuckets
from tests.publisher_api.conftest import (
    FakeClock,
    bearer,
    broker_up,
    config,
    issue_key,
    no_webhook_urls,
)

PROGRAMS = "/publisher.v1/loyalty-program/list"


@pytest.fixture
def api_settings() -> ApiSettings:
    # 60 a minute is one a second; a burst of 2 lets three through at once.
    return ApiSettings(rate_limit_per_minute=60, rate_limit_burst=2)


async def test_every_authenticated_answer_carries_the_rate_limit_headers(
    client: httpx.AsyncClient, read_key: str
) -> None:
    ok = await client.post(PROGRAMS, json={}, headers=bearer(read_key))
    not_found = await client.post(
        "/publisher.v1/loyalty-program/get", json={"id": "lp_x"}, headers=bearer(read_key)
    )

    assert ok.headers["RateLimit-Policy"] == '"per-key";q=60;w=60'
    assert ok.headers["RateLimit"] == '"per-key";r=2;t=1'
    assert (ok.headers["X-RateLimit-Limit"], ok.headers["X-RateLimit-Remaining"]) == ("60", "2")
    assert ok.headers["X-RateLimit-Reset"] == "1"
    assert not_found.status_code == 404
    assert not_found.headers["RateLimit"] == '"per-key";r=1;t=2'


async def test_burst_beyond_the_bucket_is_429_with_retry_after_until_it_refills(
    client: httpx.AsyncClient, read_key: str, clock: FakeClock
) -> None:
    answers = [await client.post(PROGRAMS, json={}, headers=bearer(read_key)) for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["RateLimit"] == '"per-key";r=0;t=3'
    assert refused.headers["X-RateLimit-Remaining"] == "0"

    clock.advance(1.0)
    assert (await client.post(PROGRAMS, json={}, headers=bearer(read_key))).status_code == 200
    assert (await client.post(PROGRAMS, json={}, headers=bearer(read_key))).status_code == 429


async def test_each_key_has_its_own_bucket(
    client: httpx.AsyncClient, async_engine: AsyncEngine, read_key: str
) -> None:
    other = await issue_key(async_engine, Scope.READ)
    for _ in range(3):
        await client.post(PROGRAMS, json={}, headers=bearer(read_key))

    assert (await client.post(PROGRAMS, json={}, headers=bearer(read_key))).status_code == 429
    assert (await client.post(PROGRAMS, json={}, headers=bearer(other))).status_code == 200


async def test_unauthenticated_answers_carry_no_rate_limit_headers(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(PROGRAMS, json={})

    assert response.status_code == 401
    assert "RateLimit" not in response.headers


async def test_apps_do_not_share_buckets(async_engine: AsyncEngine, read_key: str) -> None:
    settings = ApiSettings(rate_limit_per_minute=60, rate_limit_burst=0)
    statuses = []
    for _ in range(2):
        app = create_app(
            config(settings), async_engine, broker_up, no_webhook_urls, clock=FakeClock()
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            statuses.append(
                (await client.post(PROGRAMS, json={}, headers=bearer(read_key))).status_code
            )

    assert statuses == [200, 200]


@given(
    per_minute=st.integers(1, 1000),
    burst=st.integers(0, 50),
    gaps=st.lists(st.floats(0, 5, allow_nan=False), min_size=1, max_size=200),
)
def test_bucket_never_admits_more_than_burst_plus_the_refill(
    per_minute: int, burst: int, gaps: list[float]
) -> None:
    clock = FakeClock()
    buckets = TokenBuckets(per_minute, burst, clock)
    admitted = 0
    for gap in gaps:
        clock.advance(gap)
        decision = buckets.take("key")
        admitted += decision.allowed
        assert decision.allowed or decision.retry_after_s >= 1
        assert 0 <= decision.remaining <= burst

    elapsed = clock.now - FakeClock().now
    assert admitted <= 1 + burst + elapsed * per_minute / 60 + 1e-6
