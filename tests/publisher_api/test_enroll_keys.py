"""Enroll keys: browser-safe keys that only enroll, from the origins they allow (CORS)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import keys
from tests.publisher_api.conftest import add_program, bearer, issue_key

ENROLL = "/publisher.v1/wallet.stamp-collection/create"
WALLET = "https://wallet.example.com"
BODY = {"loyalty_program_id": "lp_coffee", "member_id": "m_1"}


@pytest.fixture
async def enroll_key(async_engine: AsyncEngine) -> str:
    await add_program(async_engine, "lp_coffee")
    return await issue_key(async_engine, keys.Scope.ENROLL, allowed_origins=[WALLET])


async def test_a_wallet_page_enrolls_its_member_and_may_read_the_answer(
    client: httpx.AsyncClient, enroll_key: str
) -> None:
    answer = await client.post(ENROLL, json=BODY, headers={**bearer(enroll_key), "Origin": WALLET})

    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == WALLET
    assert answer.headers["Vary"] == "Origin"


async def test_a_page_on_another_origin_is_refused_and_cannot_read_the_answer(
    client: httpx.AsyncClient, enroll_key: str
) -> None:
    headers = {**bearer(enroll_key), "Origin": "https://evil.example"}

    answer = await client.post(ENROLL, json=BODY, headers=headers)

    assert answer.status_code == 403
    assert "Access-Control-Allow-Origin" not in answer.headers


@pytest.mark.parametrize(
    "path, body",
    [
        ("/publisher.v1/wallet.stamp-collection/get", {"id": "sc_NOPE"}),
        ("/publisher.v1/wallet.stamp-collection/list", {"member_id": "m_1"}),
        ("/publisher.v1/loyalty-program/list", {}),
        ("/publisher.v1/reward/list", {"member_id": "m_1"}),
    ],
)
async def test_an_enroll_key_reads_nothing(
    client: httpx.AsyncClient, enroll_key: str, path: str, body: dict[str, str]
) -> None:
    answer = await client.post(path, json=body, headers={**bearer(enroll_key), "Origin": WALLET})

    assert answer.status_code == 403


async def test_a_browser_preflight_of_enrollment_is_answered_without_a_key(
    client: httpx.AsyncClient,
) -> None:
    headers = {
        "Origin": WALLET,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }

    answer = await client.options(ENROLL, headers=headers)

    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == WALLET
    assert "authorization" in answer.headers["Access-Control-Allow-Headers"]
    assert answer.headers["Access-Control-Allow-Methods"] == "POST"


async def test_full_keys_still_enroll_and_origins_belong_to_enroll_keys_only(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str
) -> None:
    await add_program(async_engine, "lp_coffee")

    answer = await client.post(ENROLL, json=BODY, headers=bearer(full_key))

    assert answer.status_code == 200
    with pytest.raises(ValueError, match="only an enroll key"):
        await issue_key(async_engine, keys.Scope.FULL, allowed_origins=[WALLET])
