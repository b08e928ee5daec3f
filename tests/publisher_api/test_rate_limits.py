"""Per-key token buckets shared by every API process, with the IETF draft headers (FAULTS A5).

The clock is injected; the buckets live in the ledger, leased by each app (`ledger.rate_limits`).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from autostamp.settings import ApiSettings
from ledger import keys, rate_limits
from ledger.database import transaction
from ledger.keys import Scope
from ledger.rate_limits import BucketShape, Lease
from ledger.statements import InTransaction
from publisher_api import create_app
from publisher_api.ratelimit import SharedBuckets
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


async def test_apps_share_one_bucket_per_key(async_engine: AsyncEngine, read_key: str) -> None:
    settings = ApiSettings(rate_limit_per_minute=60, rate_limit_burst=2)
    clock = FakeClock()
    apps = [
        create_app(config(settings), async_engine, broker_up, no_webhook_urls, clock=clock)
        for _ in range(2)
    ]
    statuses = []
    for n in range(4):
        transport = httpx.ASGITransport(app=apps[n % 2])
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            statuses.append(
                (await client.post(PROGRAMS, json={}, headers=bearer(read_key))).status_code
            )

    assert statuses == [200, 200, 200, 429]


@dataclass
class MemoryBuckets:
    """The reference model of `ledger.rate_limits.lease`: the same arithmetic, in memory."""

    shape: BucketShape
    rows: dict[str, tuple[float, float]] = field(default_factory=dict)

    def lease(self, key: str, want: int, returned: int, at: float) -> Lease:
        tokens, updated = self.rows.get(key, (self.shape.capacity, at))
        refilled = min(
            self.shape.capacity, tokens + returned + max(0.0, at - updated) * self.shape.rate
        )
        granted = min(want, max(0, math.floor(refilled)))
        self.rows[key] = (refilled - granted, max(updated, at))
        return Lease(granted, refilled - granted)


@given(
    per_minute=st.integers(1, 100_000),
    burst=st.integers(0, 500),
    # Each request: the gap before it and which of three processes serves it.
    requests=st.lists(
        st.tuples(st.floats(0, 3, allow_nan=False), st.integers(0, 2)), min_size=1, max_size=300
    ),
)
def test_processes_sharing_a_bucket_never_admit_more_than_burst_plus_the_refill(
    per_minute: int, burst: int, requests: list[tuple[float, int]]
) -> None:
    clock = FakeClock()
    started = clock.now
    model = MemoryBuckets(BucketShape(capacity=1 + burst, rate=per_minute / 60))

    async def source(key: str, want: int, returned: int, at: float) -> Lease:
        return model.lease(key, want, returned, at)

    processes = [SharedBuckets(per_minute, burst, source, clock) for _ in range(3)]

    async def run() -> int:
        admitted = 0
        for gap, process in requests:
            clock.advance(gap)
            decision = await processes[process].take("key")
            admitted += decision.allowed
            assert decision.allowed or decision.retry_after_s >= 1
            assert 0 <= decision.remaining <= 1 + burst
        return admitted

    admitted = asyncio.run(run())
    assert admitted <= 1 + burst + (clock.now - started) * per_minute / 60 + 1e-6


@given(
    per_minute=st.integers(1, 100_000),
    burst=st.integers(0, 500),
    requests=st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=200),
)
def test_a_steady_caller_on_one_process_gets_the_whole_limit(
    per_minute: int, burst: int, requests: list[float]
) -> None:
    # Leases make the limit stricter only by what a process holds and has not spent.
    clock = FakeClock()
    model = MemoryBuckets(BucketShape(capacity=1 + burst, rate=per_minute / 60))

    async def source(key: str, want: int, returned: int, at: float) -> Lease:
        return model.lease(key, want, returned, at)

    buckets = SharedBuckets(per_minute, burst, source, clock)
    reference = MemoryBuckets(BucketShape(capacity=1 + burst, rate=per_minute / 60))

    async def run() -> tuple[int, int]:
        admitted = expected = 0
        for gap in requests:
            clock.advance(gap)
            admitted += (await buckets.take("key")).allowed
            expected += reference.lease("key", 1, 0, clock.now).granted
        return admitted, expected

    admitted, expected = asyncio.run(run())
    assert admitted >= expected - buckets.want


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(st.integers(1, 5), st.integers(0, 3), st.floats(-1, 2, allow_nan=False)),
        min_size=1,
        max_size=8,
    )
)
def test_the_ledger_leases_as_the_reference_model_does(
    engine: Engine, database_url: str, steps: list[tuple[int, int, float]]
) -> None:
    shape = BucketShape(capacity=4, rate=2.0)
    model = MemoryBuckets(shape)

    async def run() -> None:
        engine = create_async_engine(database_url)
        async with transaction(engine) as conn:
            await conn.execute(_NO_BUCKETS)
            key_id = (await keys.create_key(conn, "leases", Scope.READ)).record.id
        at = 1_000.0
        for want, returned, gap in steps:
            at += gap  # a clock that runs backwards (another host's) refills nothing
            async with transaction(engine) as conn:
                leased = await rate_limits.lease(
                    InTransaction(conn), key_id, shape, want=want, returned=returned, at=at
                )
            expected = model.lease(key_id, want, returned, at)
            assert leased.granted == expected.granted
            assert leased.left == pytest.approx(expected.left)
        await engine.dispose()

    asyncio.run(run())


_NO_BUCKETS = text("DELETE FROM api_rate_buckets")
