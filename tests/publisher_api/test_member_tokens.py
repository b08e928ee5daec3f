"""Member tokens: minted by the publisher's backend, they read one member's data and no more."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import keys
from ledger.database import transaction
from ledger.errors import NotFound
from ledger.schema import ApiKey
from tests.publisher_api.conftest import (
    FakeClock,
    add_program,
    add_reward,
    add_stamp,
    bearer,
    issue_key,
)

MINT = "/publisher.v1/member-token/create"
REVOKE = "/publisher.v1/member-token/revoke"
ENROLL = "/publisher.v1/wallet.stamp-collection/create"
COLLECTIONS = "/publisher.v1/wallet.stamp-collection/list"
PROGRAMS = "/publisher.v1/loyalty-program/list"


async def mint(client: httpx.AsyncClient, key: str, member_id: str, **body: Any) -> dict[str, Any]:
    answer = await client.post(MINT, json={"member_id": member_id, **body}, headers=bearer(key))
    assert answer.status_code == 200, answer.text
    minted: dict[str, Any] = answer.json()
    return minted


async def enroll(client: httpx.AsyncClient, key: str, member_id: str) -> str:
    body = {"loyalty_program_id": "lp_coffee", "member_id": member_id}
    answer = await client.post(ENROLL, json=body, headers=bearer(key))
    assert answer.status_code == 200, answer.text
    collection_id: str = answer.json()["id"]
    return collection_id


@pytest.fixture
async def wallets(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str
) -> dict[str, str]:
    """Two members enrolled in one program, each with a stamp and a reward."""
    await add_program(async_engine, "lp_coffee")
    mine, theirs = await enroll(client, full_key, "m_1"), await enroll(client, full_key, "m_2")
    for collection_id, tag in ((mine, "mine"), (theirs, "theirs")):
        await add_stamp(async_engine, collection_id, f"p-{tag}")
        await add_reward(async_engine, f"rw_{tag}", collection_id, cycle=1)
    return {"mine": mine, "theirs": theirs}


@pytest.fixture
async def member_token(client: httpx.AsyncClient, full_key: str) -> str:
    token: str = (await mint(client, full_key, "m_1"))["token"]
    return token


def reads_of(collection_id: str, reward_id: str) -> list[tuple[str, dict[str, str]]]:
    return [
        ("/publisher.v1/wallet.stamp-collection/get", {"id": collection_id}),
        ("/publisher.v1/wallet.stamp-collection/stamps", {"stamp_collection_id": collection_id}),
        ("/publisher.v1/reward/list", {"stamp_collection_id": collection_id}),
        ("/publisher.v1/reward/get", {"id": reward_id}),
    ]


async def test_a_backend_mints_a_member_token_once_with_its_expiry(
    client: httpx.AsyncClient, full_key: str
) -> None:
    before = datetime.now(UTC)

    minted = await mint(client, full_key, "m_1", ttl_seconds=600)

    assert minted["token"].startswith("amt_")
    assert minted["member_id"] == "m_1"
    assert minted["id"].startswith("mtk_")
    expires_at = datetime.fromisoformat(minted["expires_at"])
    assert before + timedelta(seconds=599) <= expires_at <= before + timedelta(seconds=602)


async def test_a_member_token_lists_only_its_members_collections(
    client: httpx.AsyncClient, wallets: dict[str, str], member_token: str
) -> None:
    own = await client.post(COLLECTIONS, json={"member_id": "m_1"}, headers=bearer(member_token))
    by_program = await client.post(
        COLLECTIONS, json={"loyalty_program_id": "lp_coffee"}, headers=bearer(member_token)
    )
    rewards = await client.post(
        "/publisher.v1/reward/list", json={"member_id": "m_1"}, headers=bearer(member_token)
    )

    assert [c["id"] for c in own.json()["data"]] == [wallets["mine"]]
    assert [c["id"] for c in by_program.json()["data"]] == [wallets["mine"]]
    assert [r["id"] for r in rewards.json()["data"]] == ["rw_mine"]


async def test_a_member_token_reads_its_own_collection_stamps_rewards_and_the_programs(
    client: httpx.AsyncClient, wallets: dict[str, str], member_token: str
) -> None:
    for path, body in [*reads_of(wallets["mine"], "rw_mine"), (PROGRAMS, {})]:
        answer = await client.post(path, json=body, headers=bearer(member_token))
        assert answer.status_code == 200, (path, answer.text)
        assert "m_2" not in answer.text


@pytest.mark.parametrize("call", range(4))
async def test_another_members_collection_stamps_and_rewards_are_not_found(
    client: httpx.AsyncClient, wallets: dict[str, str], member_token: str, call: int
) -> None:
    path, body = reads_of(wallets["theirs"], "rw_theirs")[call]

    answer = await client.post(path, json=body, headers=bearer(member_token))

    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "path, body",
    [
        (COLLECTIONS, {"member_id": "m_2"}),
        (COLLECTIONS, {"member_id": "m_2", "loyalty_program_id": "lp_coffee"}),
        ("/publisher.v1/reward/list", {"member_id": "m_2"}),
    ],
)
async def test_a_member_token_naming_another_member_is_refused(
    client: httpx.AsyncClient,
    wallets: dict[str, str],
    member_token: str,
    path: str,
    body: dict[str, str],
) -> None:
    answer = await client.post(path, json=body, headers=bearer(member_token))

    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    "path, body",
    [
        (ENROLL, {"loyalty_program_id": "lp_coffee", "member_id": "m_1"}),
        ("/publisher.v1/webhook-endpoint/list", {}),
        ("/publisher.v1/webhook-endpoint/get", {"id": "we_NOPE"}),
        ("/publisher.v1/webhook-endpoint/deliveries", {"endpoint_id": "we_NOPE"}),
        ("/publisher.v1/webhook-message/redeliver", {"message_id": "msg_NOPE"}),
        ("/publisher.v1/reward/retry-payout", {"id": "rw_mine"}),
        (MINT, {"member_id": "m_1"}),
        (REVOKE, {"id": "mtk_NOPE"}),
    ],
)
async def test_a_member_token_cannot_enroll_write_reach_webhooks_or_mint(
    client: httpx.AsyncClient,
    wallets: dict[str, str],
    member_token: str,
    path: str,
    body: dict[str, str],
) -> None:
    answer = await client.post(path, json=body, headers=bearer(member_token))

    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    "scope, status",
    [
        (keys.Scope.READ, 403),
        (keys.Scope.ENROLL, 403),
        (keys.Scope.FULL, 200),
        (keys.Scope.ADMIN, 200),
    ],
)
async def test_minting_needs_a_full_or_admin_key(
    client: httpx.AsyncClient, async_engine: AsyncEngine, scope: keys.Scope, status: int
) -> None:
    key = await issue_key(async_engine, scope)

    answer = await client.post(MINT, json={"member_id": "m_1"}, headers=bearer(key))

    assert answer.status_code == status


@pytest.mark.parametrize("ttl", [0, 59, 86_401, -1, "3600", 3600.5, None])
async def test_a_ttl_out_of_range_is_a_400_json_error(
    client: httpx.AsyncClient, full_key: str, ttl: object
) -> None:
    body = {"member_id": "m_1", "ttl_seconds": ttl}

    answer = await client.post(MINT, json=body, headers=bearer(full_key))

    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_request"
    assert answer.json()["error"]["details"]["field"] == "ttl_seconds"


async def test_a_token_lives_an_hour_by_default_and_a_day_at_most(
    client: httpx.AsyncClient, full_key: str
) -> None:
    before = datetime.now(UTC)

    default = datetime.fromisoformat((await mint(client, full_key, "m_1"))["expires_at"])
    longest = datetime.fromisoformat(
        (await mint(client, full_key, "m_1", ttl_seconds=86_400))["expires_at"]
    )

    assert timedelta(seconds=3599) <= default - before <= timedelta(seconds=3602)
    assert timedelta(seconds=86_399) <= longest - before <= timedelta(seconds=86_402)


async def test_a_member_tokens_plaintext_is_not_stored(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str
) -> None:
    minted = await mint(client, full_key, "m_1")
    _, prefix, secret = minted["token"].split("_")

    async with transaction(async_engine) as conn:
        row = (await conn.execute(select(ApiKey).where(ApiKey.id == minted["id"]))).one()
        stored = " ".join(str(value) for row in await conn.execute(select(ApiKey)) for value in row)

    assert (row.prefix, row.scope, row.member_id) == (prefix, "member", "m_1")
    assert row.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in stored and minted["token"] not in stored


async def test_an_expired_member_token_is_refused(
    client: httpx.AsyncClient, async_engine: AsyncEngine
) -> None:
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    async with transaction(async_engine) as conn:
        issued = await keys.create_member_token(conn, "m_1", timedelta(hours=1), long_ago)

    answer = await client.post(PROGRAMS, json={}, headers=bearer(issued.token))

    assert answer.status_code == 401
    assert answer.json()["error"]["message"] == "the API key expired"


async def test_a_revoked_member_token_is_refused_within_a_second(
    client: httpx.AsyncClient, full_key: str, clock: FakeClock
) -> None:
    minted = await mint(client, full_key, "m_1")
    member = bearer(minted["token"])
    assert (await client.post(PROGRAMS, json={}, headers=member)).status_code == 200

    revoked = await client.post(REVOKE, json={"id": minted["id"]}, headers=bearer(full_key))
    clock.advance(0.9)
    still_trusted = await client.post(PROGRAMS, json={}, headers=member)
    clock.advance(0.1)
    answer = await client.post(PROGRAMS, json={}, headers=member)

    assert revoked.status_code == 200
    assert revoked.json()["id"] == minted["id"] and revoked.json()["revoked_at"]
    assert still_trusted.status_code == 200
    assert answer.status_code == 401
    assert answer.json()["error"]["message"] == "the API key was revoked"


async def test_revoking_a_member_token_never_revokes_a_key(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str, admin_key: str
) -> None:
    async with transaction(async_engine) as conn:
        admin = next(k for k in await keys.list_keys(conn) if k.scope is keys.Scope.ADMIN)
        with pytest.raises(NotFound):
            await keys.revoke_member_token(conn, admin.id, datetime.now(UTC))

    answer = await client.post(REVOKE, json={"id": admin.id}, headers=bearer(full_key))

    assert answer.status_code == 400  # not the shape of a member token's id
    assert (await client.post(PROGRAMS, json={}, headers=bearer(admin_key))).status_code == 200


async def test_minting_sweeps_tokens_expired_for_a_day_and_keys_list_shows_none(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str
) -> None:
    now = datetime.now(UTC)
    async with transaction(async_engine) as conn:
        hour = timedelta(hours=1)
        stale = await keys.create_member_token(conn, "m_1", hour, now - timedelta(days=2))
        recent = await keys.create_member_token(conn, "m_1", hour, now - timedelta(hours=2))

    fresh = await mint(client, full_key, "m_1")

    async with transaction(async_engine) as conn:
        ids = set((await conn.execute(select(ApiKey.id))).scalars())
        listed = [key.id for key in await keys.list_keys(conn)]
    assert stale.record.id not in ids
    assert {recent.record.id, fresh["id"]} <= ids
    assert recent.record.id not in listed and fresh["id"] not in listed
