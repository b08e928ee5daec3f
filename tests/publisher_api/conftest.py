"""The publisher API over a real migrated PostgreSQL, called through httpx."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from autostamp.api_server import uvicorn_config
from autostamp.embedded import free_port
from autostamp.settings import ApiSettings, Settings, WebhookSettings
from autostamp.wiring import api_config, libpq_url
from ledger import keys
from ledger.database import transaction
from ledger.errors import UnsafeUrl
from ledger.programs import upsert_program
from ledger.schema import Reward, Stamp
from ledger.statements import PooledStatements
from publisher_api import create_app
from publisher_api.config import ApiConfig
from rules.samples import sample_program
from tests.webhooks.support import TEST_KEYRING


@dataclass
class FakeClock:
    """A monotonic clock that moves only when told."""

    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def broker_up() -> bool:
    return True


async def no_webhook_urls(url: str) -> object:
    """The URL policy of apps whose tests register no webhook endpoint."""
    raise UnsafeUrl(url, "no webhook endpoints in these tests")


def config(limits: ApiSettings | None = None) -> ApiConfig:
    """The API's config as `autostamp api` builds it, from `limits` or the default settings."""
    return api_config(limits or ApiSettings(), WebhookSettings(), TEST_KEYRING)


def program_row(program_id: str, **overrides: Any) -> dict[str, Any]:
    row = sample_program(program_id, rules={"merchant_ids": ["m1"]})
    row["display_content"]["reward"] = {"formatted": "1 free coffee"}
    return {**row, **overrides}


async def add_program(engine: AsyncEngine, program_id: str, **overrides: Any) -> None:
    async with transaction(engine) as conn:
        await upsert_program(conn, program_row(program_id, **overrides))


async def add_stamp(
    engine: AsyncEngine, collection_id: str, purchase_id: str, **overrides: Any
) -> None:
    values: dict[str, Any] = {
        "collection_id": collection_id,
        "purchase_id": purchase_id,
        "transaction_id": f"tx-{purchase_id}",
        "cycle": 1,
        "amount": 450,
        "currency": "GBP",
        "merchant_id": "m1",
        "merchant_name": "Corner Coffee",
        "occurred_at": datetime.fromisoformat("2024-03-01T09:15:00+00:00"),
    }
    async with transaction(engine) as conn:
        await conn.execute(insert(Stamp).values(**{**values, **overrides}))


async def add_reward(engine: AsyncEngine, reward_id: str, collection_id: str, cycle: int) -> None:
    async with transaction(engine) as conn:
        await conn.execute(
            insert(Reward).values(
                id=reward_id,
                collection_id=collection_id,
                cycle=cycle,
                type="refund",
                amount=450,
                currency="GBP",
                transaction_id=f"tx-{reward_id}",
                purchase_id=f"p-{reward_id}",
                stamps_used=5,
            )
        )


async def issue_key(engine: AsyncEngine, scope: keys.Scope, **options: Any) -> str:
    async with transaction(engine) as conn:
        issued = await keys.create_key(conn, f"{scope} key", scope, **options)
    return issued.token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def served_as_autostamp_api() -> AsyncIterator[int]:
    """The port of one API process as `autostamp api` runs it: its uvicorn config, and its app
    built from the settings in the environment."""
    port = free_port()
    with socket.create_server(("127.0.0.1", port)) as sock:
        served = uvicorn.Server(uvicorn_config(Settings()))
        task = asyncio.create_task(served.serve(sockets=[sock]))
        async with asyncio.timeout(10):
            while not served.started and not task.done():  # noqa: ASYNC110 (no event to wait on)
                await asyncio.sleep(0.01)
        if task.done():
            await task  # raises what stopped the server from starting
        yield port
        served.should_exit = True
        await task


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api_settings() -> ApiSettings:
    # Generous limits: only the rate-limit tests want to meet them.
    return ApiSettings(rate_limit_per_minute=60_000, rate_limit_burst=10_000)


@pytest.fixture
async def app(
    async_engine: AsyncEngine, database_url: str, api_settings: ApiSettings, clock: FakeClock
) -> AsyncIterator[FastAPI]:
    """The API as `autostamp api` builds it: reads and rate leases on a psycopg pool."""
    statements = PooledStatements(libpq_url(database_url), 2)
    yield create_app(
        config(api_settings),
        async_engine,
        broker_up,
        no_webhook_urls,
        clock=clock,
        statements=statements,
    )
    await statements.close()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def read_key(async_engine: AsyncEngine) -> str:
    return await issue_key(async_engine, keys.Scope.READ)


@pytest.fixture
async def full_key(async_engine: AsyncEngine) -> str:
    return await issue_key(async_engine, keys.Scope.FULL)


@pytest.fixture
async def admin_key(async_engine: AsyncEngine) -> str:
    return await issue_key(async_engine, keys.Scope.ADMIN)
