"""Cursor pagination: opaque, keyset-ordered, stable while rows are being added."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.pages import Position
from publisher_api import pagination
from publisher_api.errors import InvalidRequest
from tests.publisher_api.conftest import add_program, add_stamp, bearer

PROGRAMS = "/publisher.v1/loyalty-program/list"
COLLECTIONS = "/publisher.v1/wallet.stamp-collection/list"
STAMPS = "/publisher.v1/wallet.stamp-collection/stamps"


async def _walk(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], key: str, between: Any
) -> list[dict[str, Any]]:
    """Every item of every page, calling `between(page_number)` after each page."""
    items: list[dict[str, Any]] = []
    cursor = None
    for number in range(100):
        request = {**body, "pagination": {"limit": 2, "cursor": cursor}}
        page = (await client.post(path, json=request, headers=bearer(key))).json()
        items += page["data"]
        assert page["page"]["page_size"] == 2
        assert len(page["data"]) <= 2
        if not page["page"]["more"]:
            assert page["page"]["cursor"] is None
            return items
        cursor = page["page"]["cursor"]
        await between(number)
    raise AssertionError("pagination did not end")


async def test_program_pages_lose_and_repeat_nothing_while_programs_are_added(
    client: httpx.AsyncClient, async_engine: AsyncEngine, read_key: str
) -> None:
    for n in range(5):
        await add_program(async_engine, f"lp_{n}")

    async def add_one(page: int) -> None:
        await add_program(async_engine, f"lp_new_{page}")

    items = await _walk(client, PROGRAMS, {}, read_key, add_one)

    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids))
    assert ids[:5] == [f"lp_{n}" for n in range(5)]
    assert {f"lp_new_{n}" for n in range(3)} <= set(ids)


async def test_collection_pages_lose_and_repeat_nothing_while_members_enroll(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str
) -> None:
    async def enroll(program: str) -> str:
        await add_program(async_engine, program)
        body = {"loyalty_program_id": program, "member_id": "m_1"}
        response = await client.post(
            "/publisher.v1/wallet.stamp-collection/create", json=body, headers=bearer(full_key)
        )
        return str(response.json()["id"])

    before = [await enroll(f"lp_{n}") for n in range(5)]
    added: list[str] = []

    async def enroll_more(page: int) -> None:
        added.append(await enroll(f"lp_more_{page}"))

    items = await _walk(client, COLLECTIONS, {"member_id": "m_1"}, full_key, enroll_more)

    ids = [item["id"] for item in items]
    assert ids == before + added


async def test_stamp_pages_follow_the_stamp_order(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str
) -> None:
    await add_program(async_engine, "lp_coffee")
    response = await client.post(
        "/publisher.v1/wallet.stamp-collection/create",
        json={"loyalty_program_id": "lp_coffee", "member_id": "m_1"},
        headers=bearer(full_key),
    )
    collection = response.json()["id"]
    for n in range(5):
        await add_stamp(async_engine, collection, f"p{n}")

    async def stamp_more(page: int) -> None:
        await add_stamp(async_engine, collection, f"late{page}")

    items = await _walk(client, STAMPS, {"stamp_collection_id": collection}, full_key, stamp_more)

    assert [i["purchase_id"] for i in items] == [f"p{n}" for n in range(5)] + [
        "late0",
        "late1",
        "late2",
    ]


@pytest.mark.parametrize("limit", [0, 101, -1])
async def test_page_size_out_of_range_is_invalid(
    client: httpx.AsyncClient, read_key: str, limit: int
) -> None:
    response = await client.post(
        PROGRAMS, json={"pagination": {"limit": limit}}, headers=bearer(read_key)
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert "pagination.limit" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "",
        pagination.encode("collections", Position(datetime(2024, 1, 1, tzinfo=UTC), "sc_A")),
        pagination.encode("programs", Position(datetime(2024, 1, 1, tzinfo=UTC), 7)),
    ],
)
async def test_cursor_not_issued_for_this_list_is_invalid(
    client: httpx.AsyncClient, read_key: str, cursor: str
) -> None:
    response = await client.post(
        PROGRAMS, json={"pagination": {"cursor": cursor}}, headers=bearer(read_key)
    )

    assert response.status_code == 400
    assert "pagination.cursor" in response.json()["error"]["message"]


@given(
    created_at=st.datetimes(timezones=st.just(UTC)),
    key=st.one_of(st.text(max_size=40), st.integers(min_value=0, max_value=2**63)),
)
def test_cursor_decodes_to_the_position_it_encodes(created_at: datetime, key: str | int) -> None:
    cursor = pagination.encode("things", Position(created_at, key))

    assert pagination.decode("things", cursor, type(key)) == Position(created_at, key)


@given(st.text(max_size=80))
def test_any_text_decodes_to_a_position_or_invalid_request(cursor: str) -> None:
    with contextlib.suppress(InvalidRequest):
        pagination.decode("things", cursor)
