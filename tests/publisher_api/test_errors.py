"""A bad request gets a clear JSON error with the right status, never a 500 (FAULTS A3, A6, A7)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from autostamp.embedded import free_port
from ledger.errors import BrokerError, EmbeddedServiceError
from ledger.schema import StampCollection
from publisher_api import create_app
from tests.publisher_api.conftest import add_program, bearer, broker_up, config, no_webhook_urls

PROGRAMS = "/publisher.v1/loyalty-program/list"
ENROLL = "/publisher.v1/wallet.stamp-collection/create"
LIMIT = 64 * 1024


def _error(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    assert set(body["error"]) <= {"code", "message", "details"}
    return dict(body["error"])


@pytest.mark.parametrize(
    "body, field",
    [
        ({"loyalty_program_id": "lp_coffee"}, "member_id: is required"),
        ({"loyalty_program_id": "coffee", "member_id": "m_1"}, "loyalty_program_id"),
        ({"loyalty_program_id": "lp_coffee", "member_id": 42}, "member_id"),
        ({"loyalty_program_id": "lp_coffee", "member_id": ""}, "member_id"),
        ({"loyalty_program_id": "lp_coffee", "member_id": "m\x00"}, "member_id"),
        ({"loyalty_program_id": "lp_coffee", "member_id": "m" * 201}, "member_id"),
        ([], "body"),
        ("lp_coffee", "body"),
    ],
)
async def test_invalid_body_is_400_naming_the_field(
    client: httpx.AsyncClient, full_key: str, body: object, field: str
) -> None:
    response = await client.post(ENROLL, json=body, headers=bearer(full_key))

    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "invalid_request"
    assert field in error["message"]


async def test_lone_surrogate_in_a_member_id_is_400(
    client: httpx.AsyncClient, full_key: str
) -> None:
    body = b'{"loyalty_program_id": "lp_coffee", "member_id": "m\\ud800"}'
    headers = {**bearer(full_key), "Content-Type": "application/json"}

    response = await client.post(ENROLL, content=body, headers=headers)

    assert response.status_code == 400
    assert "member_id" in _error(response)["message"]


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"{'a': 1}",
        b"\xff\xfe",
        b"",
        b"null",
        b"[" * 60_000,
        b'{"pagination": {"limit": 1' + b"0" * 5000 + b"}}",
        b'{"pagination": {"limit": NaN}}',
    ],
)
async def test_body_that_is_not_a_json_object_is_400(
    client: httpx.AsyncClient, read_key: str, body: bytes
) -> None:
    headers = {**bearer(read_key), "Content-Type": "application/json"}

    response = await client.post(PROGRAMS, content=body, headers=headers)

    assert response.status_code == 400
    assert _error(response)["code"] == "invalid_request"


@pytest.mark.parametrize("extra", ["publisher_id", "unredeemed_purchases", "id", "balance"])
async def test_mass_assignment_fields_are_refused_and_change_nothing(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str, extra: str
) -> None:
    await add_program(async_engine, "lp_coffee")
    body = {"loyalty_program_id": "lp_coffee", "member_id": "m_1", extra: 999}

    response = await client.post(ENROLL, json=body, headers=bearer(full_key))

    assert response.status_code == 400
    assert (
        _error(response)["message"] == f"invalid request: {extra}: is not a field of this request"
    )
    async with async_engine.connect() as conn:
        assert (await conn.execute(select(StampCollection.id))).all() == []


async def test_a_refused_field_is_named_in_the_details_with_the_values_it_accepts(
    client: httpx.AsyncClient, async_engine: AsyncEngine, admin_key: str
) -> None:
    body = {"url": "https://hooks.example.com/", "event_types": ["stamp.nope"]}

    response = await client.post(
        "/publisher.v1/webhook-endpoint/create", json=body, headers=bearer(admin_key)
    )

    details = _error(response)["details"]
    assert details["field"] == "event_types.0"
    [problem] = details["problems"]
    assert problem["field"] == "event_types.0"
    for accepted in ("stamp.collected", "stamp.voided", "reward.triggered"):
        assert accepted in problem["expected"]


async def test_a_second_enrollment_names_the_existing_collection_in_the_details(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str
) -> None:
    await add_program(async_engine, "lp_coffee")
    body = {"loyalty_program_id": "lp_coffee", "member_id": "m_1"}
    first = await client.post(ENROLL, json=body, headers=bearer(full_key))

    again = await client.post(ENROLL, json=body, headers=bearer(full_key))

    assert again.status_code == 409
    assert _error(again)["details"] == {
        "stamp_collection_id": first.json()["id"],
        "loyalty_program_id": "lp_coffee",
        "member_id": "m_1",
    }


async def test_unknown_field_inside_pagination_is_refused(
    client: httpx.AsyncClient, read_key: str
) -> None:
    body = {"pagination": {"limit": 5, "offset": 10}}

    response = await client.post(PROGRAMS, json=body, headers=bearer(read_key))

    assert response.status_code == 400
    assert "pagination.offset" in _error(response)["message"]


async def test_unknown_path_is_404_and_wrong_method_is_405(client: httpx.AsyncClient) -> None:
    missing = await client.post("/publisher.v1/nothing", json={})
    wrong = await client.get(PROGRAMS)

    assert missing.status_code == 404 and _error(missing)["code"] == "not_found"
    assert wrong.status_code == 405 and _error(wrong)["code"] == "method_not_allowed"
    assert wrong.headers["Allow"] == "POST"


async def test_body_declared_larger_than_the_limit_is_413_before_auth(
    client: httpx.AsyncClient,
) -> None:
    headers = {"Content-Type": "application/json", "Content-Length": str(10 * 1024 * 1024)}

    response = await client.post(PROGRAMS, content=b"{}", headers=headers)

    assert response.status_code == 413
    assert _error(response)["code"] == "payload_too_large"


async def test_body_longer_than_its_content_length_claims_is_413(
    client: httpx.AsyncClient, read_key: str
) -> None:
    headers = {**bearer(read_key), "Content-Type": "application/json", "Content-Length": "10"}

    response = await client.post(PROGRAMS, content=b" " * (LIMIT + 1), headers=headers)

    assert response.status_code == 413


async def test_chunked_body_without_length_is_cut_off_at_the_limit(
    client: httpx.AsyncClient, read_key: str
) -> None:
    sent = 0

    async def ten_megabytes() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(160):
            sent += 1
            yield b" " * 65536

    headers = {**bearer(read_key), "Content-Type": "application/json"}

    response = await client.post(PROGRAMS, content=ten_megabytes(), headers=headers)

    assert response.status_code == 413
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert sent <= 3  # reading stopped right after the limit: memory stays bounded


async def test_chunked_body_within_the_limit_is_served(
    client: httpx.AsyncClient, read_key: str
) -> None:
    async def pieces() -> AsyncIterator[bytes]:
        yield b'{"pagination":'
        yield b' {"limit": 3}}'

    headers = {**bearer(read_key), "Content-Type": "application/json"}

    response = await client.post(PROGRAMS, content=pieces(), headers=headers)

    assert response.status_code == 200
    assert response.json()["page"]["page_size"] == 3


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/xml", "application/x-www-form-urlencoded", "json"],
)
async def test_non_json_content_type_is_415(
    client: httpx.AsyncClient, read_key: str, content_type: str | None
) -> None:
    headers = bearer(read_key) | ({"Content-Type": content_type} if content_type else {})

    response = await client.post(PROGRAMS, content=b"{}", headers=headers)

    assert response.status_code == 415
    assert _error(response)["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/merge+json"]
)
async def test_json_content_types_with_parameters_or_suffix_are_accepted(
    client: httpx.AsyncClient, read_key: str, content_type: str
) -> None:
    headers = bearer(read_key) | {"Content-Type": content_type}

    response = await client.post(PROGRAMS, content=b"{}", headers=headers)

    assert response.status_code == 200


async def test_unexpected_failure_is_a_bare_500_without_trace_or_sql(
    async_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    broken = APIRouter()

    @broken.post("/broken/plain")
    async def plain() -> None:
        raise RuntimeError("SELECT secret FROM api_keys")

    @broken.post("/broken/ours")
    async def ours() -> None:
        raise EmbeddedServiceError("postgres at /srv/state/postgres would not start")

    app = create_app(config(), async_engine, broker_up, no_webhook_urls, routers=[broken])
    async with _client(app) as client:
        answers = [await client.post(path, json={}) for path in ("/broken/plain", "/broken/ours")]

    for response in answers:
        assert response.status_code == 500
        assert _error(response) == {
            "code": "internal",
            "message": "internal error; it has been logged",
        }
    assert "SELECT secret" in caplog.text  # the operator still sees the cause


async def test_a_broker_failure_is_a_503_that_names_no_address(
    async_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    broken = APIRouter()

    @broken.post("/broken/broker")
    async def broker() -> None:
        raise BrokerError("broker 10.0.0.7:9092 did not answer")

    app = create_app(config(), async_engine, broker_up, no_webhook_urls, routers=[broken])
    async with _client(app) as client:
        response = await client.post("/broken/broker", json={})

    assert response.status_code == 503
    assert _error(response)["code"] == "unavailable"
    assert "10.0.0.7" not in response.text
    assert response.headers["Retry-After"].isdigit()
    assert "10.0.0.7" in caplog.text  # the operator still sees the cause


async def test_database_down_is_503_with_retry_after(read_key: str) -> None:
    dead = create_async_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    app = create_app(config(), dead, broker_up, no_webhook_urls)
    async with _client(app) as client:
        response = await client.post(PROGRAMS, json={}, headers=bearer(read_key))
    await dead.dispose()

    assert response.status_code == 503
    error = _error(response)
    assert error["code"] == "unavailable" and "127.0.0.1" not in error["message"]
    assert int(response.headers["Retry-After"]) > 0


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
