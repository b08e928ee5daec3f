"""API keys: stored hashed, scoped, revoked and rotated within a second (FAULTS A1, A2, A4, A8)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import keys
from ledger.database import transaction
from ledger.errors import AuthError, NotFound
from ledger.schema import ApiKey
from publisher_api import create_app
from publisher_api.auth import require
from tests.publisher_api.conftest import (
    FakeClock,
    add_program,
    bearer,
    broker_up,
    config,
    issue_key,
    no_webhook_urls,
)

PROGRAMS = "/publisher.v1/loyalty-program/list"
ENROLL = "/publisher.v1/wallet.stamp-collection/create"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)

READ_CALLS = [
    ("/publisher.v1/loyalty-program/list", {}),
    ("/publisher.v1/loyalty-program/get", {"id": "lp_coffee"}),
    ("/publisher.v1/wallet.stamp-collection/get", {"id": "sc_NOPE"}),
    ("/publisher.v1/wallet.stamp-collection/list", {"member_id": "m_1"}),
    ("/publisher.v1/wallet.stamp-collection/stamps", {"stamp_collection_id": "sc_NOPE"}),
    ("/publisher.v1/reward/list", {"member_id": "m_1"}),
    ("/publisher.v1/reward/get", {"id": "rw_NOPE"}),
]
ALL_CALLS = [*READ_CALLS, (ENROLL, {"loyalty_program_id": "lp_coffee", "member_id": "m_1"})]


async def test_key_is_stored_as_prefix_and_sha256_of_its_secret_only(
    async_engine: AsyncEngine,
) -> None:
    async with transaction(async_engine) as conn:
        issued = await keys.create_key(conn, "mobile app", keys.Scope.READ)
        row = (await conn.execute(select(ApiKey))).one()

    tag, prefix, secret = issued.token.split("_")
    assert tag == "ask"
    assert row.prefix == prefix
    assert row.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in " ".join(str(value) for value in row)
    assert issued.record.scope is keys.Scope.READ and issued.record.name == "mobile app"


async def test_listed_keys_never_carry_their_secret(async_engine: AsyncEngine) -> None:
    token = await issue_key(async_engine, keys.Scope.FULL)
    async with transaction(async_engine) as conn:
        [listed] = await keys.list_keys(conn)

    assert token.split("_")[2] not in repr(listed)
    assert listed.prefix == token.split("_")[1]


@pytest.mark.parametrize("path, body", ALL_CALLS)
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer nonsense",
        "Basic dXNlcjpwYXNz",
        "Bearer ask_000000000000_" + "a" * 32,
    ],
)
async def test_every_call_refuses_a_missing_or_unknown_key(
    client: httpx.AsyncClient, path: str, body: dict[str, str], authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}

    response = await client.post(path, json=body, headers=headers)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path, body", ALL_CALLS)
async def test_revoked_key_is_refused_by_every_call_a_second_after(
    client: httpx.AsyncClient,
    async_engine: AsyncEngine,
    full_key: str,
    clock: FakeClock,
    path: str,
    body: dict[str, str],
) -> None:
    assert (await client.post(PROGRAMS, json={}, headers=bearer(full_key))).status_code == 200
    async with transaction(async_engine) as conn:
        [key] = await keys.list_keys(conn)
        await keys.revoke_key(conn, key.id, datetime.now(UTC))

    clock.advance(1.0)
    response = await client.post(path, json=body, headers=bearer(full_key))

    assert response.status_code == 401
    assert response.json()["error"]["message"] == "the API key was revoked"


async def test_every_process_refuses_a_revoked_key_within_a_second_and_not_before_it_checks(
    async_engine: AsyncEngine, full_key: str, clock: FakeClock
) -> None:
    # Two apps are two API processes: each trusts the key it checked for at most one second.
    apps = [
        create_app(config(), async_engine, broker_up, no_webhook_urls, clock=clock)
        for _ in range(2)
    ]

    async def status(app: FastAPI) -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return (await client.post(PROGRAMS, json={}, headers=bearer(full_key))).status_code

    assert [await status(app) for app in apps] == [200, 200]
    async with transaction(async_engine) as conn:
        [key] = await keys.list_keys(conn)
        await keys.revoke_key(conn, key.id, datetime.now(UTC))
    clock.advance(0.9)
    still_trusted = [await status(app) for app in apps]
    clock.advance(0.1)
    refused = [await status(app) for app in apps]

    assert still_trusted == [200, 200]
    assert refused == [401, 401]


async def test_expired_key_is_refused(client: httpx.AsyncClient, async_engine: AsyncEngine) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    token = await issue_key(async_engine, keys.Scope.FULL, expires_at=past)

    response = await client.post(PROGRAMS, json={}, headers=bearer(token))

    assert response.status_code == 401
    assert response.json()["error"]["message"] == "the API key expired"


async def test_read_key_cannot_enroll_and_changes_nothing(
    client: httpx.AsyncClient, async_engine: AsyncEngine, read_key: str
) -> None:
    await add_program(async_engine, "lp_coffee")

    response = await client.post(ENROLL, json=ALL_CALLS[-1][1], headers=bearer(read_key))

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    listed = await client.post(
        "/publisher.v1/wallet.stamp-collection/list",
        json={"member_id": "m_1"},
        headers=bearer(read_key),
    )
    assert listed.json()["data"] == []


@pytest.mark.parametrize("path, body", READ_CALLS)
@pytest.mark.parametrize("scope", [keys.Scope.READ, keys.Scope.FULL, keys.Scope.ADMIN])
async def test_every_scope_but_enroll_may_read(
    client: httpx.AsyncClient,
    async_engine: AsyncEngine,
    scope: keys.Scope,
    path: str,
    body: dict[str, str],
) -> None:
    await add_program(async_engine, "lp_coffee")
    token = await issue_key(async_engine, scope)

    response = await client.post(path, json=body, headers=bearer(token))

    assert response.status_code in (200, 404)


async def test_operator_calls_refuse_publisher_keys(
    async_engine: AsyncEngine, full_key: str, admin_key: str
) -> None:
    operator = APIRouter()

    @operator.post("/operator/ping")
    async def ping(_: Annotated[keys.ApiKeyRecord, Depends(require("admin"))]) -> dict[str, str]:
        return {"pong": "yes"}

    app = create_app(config(), async_engine, broker_up, no_webhook_urls, routers=[operator])
    async with _client(app) as client:
        refused = await client.post("/operator/ping", json={}, headers=bearer(full_key))
        allowed = await client.post("/operator/ping", json={}, headers=bearer(admin_key))

    assert refused.status_code == 403
    assert "'admin'" in refused.json()["error"]["message"]
    assert allowed.status_code == 200


async def test_rotated_key_works_with_its_new_token_only(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str, clock: FakeClock
) -> None:
    assert (await client.post(PROGRAMS, json={}, headers=bearer(full_key))).status_code == 200
    async with transaction(async_engine) as conn:
        [key] = await keys.list_keys(conn)
        rotated = await keys.rotate_key(conn, key.id)

    clock.advance(1.0)
    old = await client.post(PROGRAMS, json={}, headers=bearer(full_key))
    new = await client.post(PROGRAMS, json={}, headers=bearer(rotated.token))

    assert old.status_code == 401
    assert new.status_code == 200
    assert (rotated.record.id, rotated.record.scope) == (key.id, keys.Scope.FULL)


async def test_revoked_key_cannot_be_rotated_and_unknown_keys_are_not_found(
    async_engine: AsyncEngine,
) -> None:
    token = await issue_key(async_engine, keys.Scope.READ)
    async with transaction(async_engine) as conn:
        [key] = await keys.list_keys(conn)
        first = await keys.revoke_key(conn, key.id, NOW)
        again = await keys.revoke_key(conn, key.id, NOW + timedelta(days=1))
        with pytest.raises(NotFound):
            await keys.rotate_key(conn, key.id)
        with pytest.raises(NotFound):
            await keys.revoke_key(conn, "key_UNKNOWN", NOW)
        with pytest.raises(AuthError):
            await keys.authenticate(conn, token, NOW)

    assert first.revoked_at == again.revoked_at == NOW


async def test_last_use_is_written_at_most_once_a_minute(async_engine: AsyncEngine) -> None:
    token = await issue_key(async_engine, keys.Scope.READ)

    async def use(at: datetime) -> datetime | None:
        async with transaction(async_engine) as conn:
            await keys.authenticate(conn, token, at)
            return (await conn.execute(select(ApiKey.last_used_at))).scalar_one()

    assert await use(NOW) == NOW
    assert await use(NOW + timedelta(seconds=59)) == NOW
    assert await use(NOW + timedelta(seconds=61)) == NOW + timedelta(seconds=61)


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
