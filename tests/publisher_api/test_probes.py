"""Liveness, readiness and Prometheus metrics, without a key."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from autostamp.embedded import free_port
from publisher_api import create_app
from tests.publisher_api.conftest import bearer, broker_up, config, no_webhook_urls


async def broker_down() -> bool:
    return False


async def broker_broken() -> bool:
    raise ConnectionError("no route to broker")


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_liveness_needs_nothing(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_ready_when_database_and_broker_answer(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")

    assert (response.status_code, response.json()) == (200, {"database": "ok", "broker": "ok"})


async def test_not_ready_when_the_broker_is_down_or_its_check_fails(
    async_engine: AsyncEngine,
) -> None:
    for check in (broker_down, broker_broken):
        async with _client(create_app(config(), async_engine, check, no_webhook_urls)) as client:
            response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {"database": "ok", "broker": "unreachable"}


async def test_not_ready_when_the_database_is_unreachable() -> None:
    dead = create_async_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    async with _client(create_app(config(), dead, broker_up, no_webhook_urls)) as client:
        response = await client.get("/readyz")
    await dead.dispose()

    assert response.status_code == 503
    assert response.json() == {"database": "unreachable", "broker": "ok"}


async def test_metrics_count_requests_by_route_template_and_status(
    client: httpx.AsyncClient, read_key: str
) -> None:
    await client.post("/publisher.v1/loyalty-program/list", json={}, headers=bearer(read_key))
    await client.post(
        "/publisher.v1/loyalty-program/get", json={"id": "lp_x"}, headers=bearer(read_key)
    )
    await client.post(
        "/publisher.v1/loyalty-program/list", content=b"x", headers={"Content-Type": "text/plain"}
    )
    await client.post("/no/such/path/123", json={})

    text = (await client.get("/metrics")).text

    assert (
        'autostamp_api_requests_total{method="POST",route="/publisher.v1/loyalty-program/list",'
        'status="200"} 1.0' in text
    )
    assert 'route="/publisher.v1/loyalty-program/get",status="404"} 1.0' in text
    assert 'route="/publisher.v1/loyalty-program/list",status="415"} 1.0' in text
    assert 'route="unmatched",status="404"} 1.0' in text
    assert "/no/such/path" not in text
    assert "autostamp_api_request_duration_seconds_bucket{" in text


async def test_each_app_has_its_own_metrics(async_engine: AsyncEngine) -> None:
    first = create_app(config(), async_engine, broker_up, no_webhook_urls)
    second = create_app(config(), async_engine, broker_up, no_webhook_urls)
    async with _client(first) as client:
        await client.get("/healthz")
    async with _client(second) as client:
        text = (await client.get("/metrics")).text

    assert 'route="/healthz"' not in text
