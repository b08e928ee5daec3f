"""Listing and reading loyalty programs, as the K42 publisher documentation shows them."""

from __future__ import annotations

import re
from datetime import datetime

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.database import transaction
from ledger.errors import DataRefused
from ledger.programs import upsert_program
from tests.publisher_api.conftest import add_program, bearer, program_row

LIST = "/publisher.v1/loyalty-program/list"
GET = "/publisher.v1/loyalty-program/get"
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


async def test_program_list_answers_the_k42_shape(
    client: httpx.AsyncClient, async_engine: AsyncEngine, read_key: str
) -> None:
    await add_program(async_engine, "lp_coffee")

    response = await client.post(LIST, json={"pagination": {"limit": 50}}, headers=bearer(read_key))

    assert response.status_code == 200
    body = response.json()
    assert body["page"] == {"page_size": 50, "cursor": None, "more": False}
    [program] = body["data"]
    created_at, updated_at = program.pop("created_at"), program.pop("updated_at")
    assert RFC3339_UTC.fullmatch(created_at) and RFC3339_UTC.fullmatch(updated_at)
    assert program == {
        "id": "lp_coffee",
        "name": "Program lp_coffee",
        "qualifying_threshold": 5,
        "reward_config": {"type": "refund"},
        "display_content": {
            "title": "Buy 5, get 1 free",
            "image": "https://cdn.example.com/card.png",
            "summary": "Collect 5 stamps",
            "description": "Buy any coffee to collect a stamp.",
            "terms": "Participating shops only.",
            "reward": {"formatted": "1 free coffee"},
        },
        "status": "active",
        "active_from": None,
        "active_until": None,
    }


async def test_fixed_reward_program_shows_amount_and_currency(
    client: httpx.AsyncClient, async_engine: AsyncEngine, read_key: str
) -> None:
    reward = {"type": "fixed-reward", "amount": 500, "currency": "GBP"}
    await add_program(async_engine, "lp_fixed", reward_config=reward)

    response = await client.post(GET, json={"id": "lp_fixed"}, headers=bearer(read_key))

    assert response.status_code == 200
    assert response.json()["reward_config"] == reward


async def test_archived_and_ended_programs_are_neither_listed_nor_readable(
    client: httpx.AsyncClient, async_engine: AsyncEngine, read_key: str
) -> None:
    await add_program(async_engine, "lp_live")
    await add_program(async_engine, "lp_paused", status="paused")
    await add_program(async_engine, "lp_archived", status="archived")
    ended = {
        "active_from": datetime.fromisoformat("2020-01-01T00:00:00+00:00"),
        "active_until": datetime.fromisoformat("2021-01-01T00:00:00+00:00"),
    }
    await add_program(async_engine, "lp_ended", **ended)

    listed = await client.post(LIST, json={}, headers=bearer(read_key))

    assert [p["id"] for p in listed.json()["data"]] == ["lp_live", "lp_paused"]
    for hidden in ("lp_archived", "lp_ended", "lp_unknown"):
        response = await client.post(GET, json={"id": hidden}, headers=bearer(read_key))
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        assert hidden in response.json()["error"]["message"]


async def test_program_get_shows_a_synced_change(
    client: httpx.AsyncClient, async_engine: AsyncEngine, read_key: str
) -> None:
    await add_program(async_engine, "lp_coffee")
    await add_program(async_engine, "lp_coffee", name="Coffee Club", version=2)

    response = await client.post(GET, json={"id": "lp_coffee"}, headers=bearer(read_key))

    assert response.json()["name"] == "Coffee Club"


async def test_upsert_program_ignores_older_versions_and_identical_replays(
    async_engine: AsyncEngine,
) -> None:
    async with transaction(async_engine) as conn:
        assert await upsert_program(conn, program_row("lp_a", version=2))
        assert not await upsert_program(conn, program_row("lp_a", version=2))
        assert not await upsert_program(conn, program_row("lp_a", name="Old", version=1))
        assert await upsert_program(conn, program_row("lp_a", qualifying_threshold=9, version=3))
        assert not await upsert_program(conn, program_row("lp_a", version=2))


async def test_upsert_program_refuses_the_version_it_holds_with_other_content(
    async_engine: AsyncEngine,
) -> None:
    async with transaction(async_engine) as conn:
        await upsert_program(conn, program_row("lp_a", version=2))
    with pytest.raises(DataRefused, match=r"version 2 .*other content.*version 3 or more"):
        async with transaction(async_engine) as conn:
            await upsert_program(conn, program_row("lp_a", status="paused", version=2))
    async with transaction(async_engine) as conn:
        await upsert_program(conn, program_row("lp_a", status="paused", version=3))
        held = await conn.execute(text("SELECT status, version FROM programs"))
        assert [tuple(row) for row in held] == [("paused", 3)]


async def test_upsert_program_refuses_unknown_or_missing_columns(
    async_engine: AsyncEngine,
) -> None:
    row = program_row("lp_a", publisher_id="p1")
    del row["rules"]
    async with transaction(async_engine) as conn:
        try:
            await upsert_program(conn, row)
        except ValueError as exc:
            assert "publisher_id" in str(exc) and "rules" in str(exc)
        else:
            raise AssertionError("upsert_program accepted a bad row")
