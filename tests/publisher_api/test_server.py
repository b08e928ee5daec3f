"""The API served by a real uvicorn on a loopback port, called over TCP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from autostamp.embedded import free_port
from tests.publisher_api.conftest import add_program, bearer


@pytest.fixture
async def server(app: FastAPI) -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", ws="none", log_level="warning"
    )
    served = uvicorn.Server(config)
    task = asyncio.create_task(served.serve())
    async with asyncio.timeout(10):
        while not served.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
            await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    served.should_exit = True
    await task


async def test_publisher_flow_over_real_http(
    server: str, async_engine: AsyncEngine, full_key: str
) -> None:
    await add_program(async_engine, "lp_coffee")
    async with httpx.AsyncClient(base_url=server, headers=bearer(full_key)) as client:
        listed = await client.post("/publisher.v1/loyalty-program/list", json={})
        created = await client.post(
            "/publisher.v1/wallet.stamp-collection/create",
            json={"loyalty_program_id": "lp_coffee", "member_id": "m_1"},
        )
        read = await client.post(
            "/publisher.v1/wallet.stamp-collection/get", json={"id": created.json()["id"]}
        )

    assert [p["id"] for p in listed.json()["data"]] == ["lp_coffee"]
    assert listed.headers["RateLimit-Policy"].startswith('"per-key";q=')
    assert created.status_code == 200
    assert read.json() == created.json()


async def test_oversized_and_chunked_bodies_are_refused_over_real_http(
    server: str, read_key: str
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(16):
            yield b" " * 65536

    headers = {**bearer(read_key), "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=server, headers=headers) as client:
        sized = await client.post("/publisher.v1/loyalty-program/list", content=b" " * 100_000)
        chunked = await client.post("/publisher.v1/loyalty-program/list", content=chunks())
        after = await client.post("/publisher.v1/loyalty-program/list", content=b"{}")

    assert sized.status_code == 413
    assert chunked.status_code == 413
    assert chunked.json()["error"]["code"] == "payload_too_large"
    assert after.status_code == 200
