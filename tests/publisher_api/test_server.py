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
from tests.publisher_api.conftest import add_program, bearer, served_as_autostamp_api
from tests.webhooks.support import TEST_KEY


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


@pytest.fixture
async def deadline_server(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[int]:
    """The API process's own server config, with a read deadline short enough to wait out."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AUTOSTAMP_SECRET_KEY", TEST_KEY)
    monkeypatch.setenv("AUTOSTAMP_API_REQUEST_READ_TIMEOUT_S", "0.5")
    async with served_as_autostamp_api() as port:
        yield port


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    async with asyncio.timeout(seconds):
        return await reader.read()


@pytest.mark.parametrize(
    "sent",
    [b"", b"POST /publisher.v1/loyalty-program/list HTTP/1.1\r\nHost: x\r\n"],
    ids=["nothing", "half the headers"],
)
async def test_a_request_that_does_not_arrive_in_time_loses_its_connection(
    deadline_server: int, sent: bytes
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", deadline_server)
    writer.write(sent)
    assert await _closed_within(reader, 3.0) == b""
    writer.close()


async def test_a_body_trickled_after_its_headers_loses_its_connection(deadline_server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", deadline_server)
    writer.write(
        b"POST /publisher.v1/loyalty-program/list HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    answer = await _closed_within(reader, 3.0)
    assert b"200 OK" not in answer
    writer.close()


async def test_a_request_sent_in_time_is_answered_and_the_connection_kept(
    deadline_server: int,
) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{deadline_server}") as client:
        first = await client.get("/healthz")
        await asyncio.sleep(0.8)  # longer than the deadline, shorter than keep-alive
        second = await client.get("/healthz")
    assert (first.status_code, second.status_code) == (200, 200)
