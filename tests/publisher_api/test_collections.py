"""Enrolling members and reading their collections, stamp history and rewards."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.database import transaction
from ledger.keys import Scope
from ledger.schema import StampCollection
from tests.publisher_api.conftest import add_program, add_reward, add_stamp, bearer, issue_key

CREATE = "/publisher.v1/wallet.stamp-collection/create"
GET = "/publisher.v1/wallet.stamp-collection/get"
LIST = "/publisher.v1/wallet.stamp-collection/list"
STAMPS = "/publisher.v1/wallet.stamp-collection/stamps"
REWARDS = "/publisher.v1/reward/list"
REWARD = "/publisher.v1/reward/get"
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


async def _enroll(
    client: httpx.AsyncClient, key: str, program: str = "lp_coffee", member: str = "m_1"
) -> dict[str, Any]:
    response = await client.post(
        CREATE, json={"loyalty_program_id": program, "member_id": member}, headers=bearer(key)
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_enrollment_answers_the_new_collection(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str
) -> None:
    await add_program(async_engine, "lp_coffee", qualifying_threshold=7)

    collection = await _enroll(client, full_key, member="m_x1y2z3")

    assert re.fullmatch(r"sc_[A-Z2-7]{24}", collection.pop("id"))
    assert RFC3339_UTC.fullmatch(collection.pop("created_at"))
    assert RFC3339_UTC.fullmatch(collection.pop("updated_at"))
    assert collection == {
        "loyalty_program_id": "lp_coffee",
        "member_id": "m_x1y2z3",
        "unredeemed_purchases": 0,
        "qualifying_threshold": 7,
        "owed_stamps": 0,
        "purchases_to_next_reward": 7,
        "status": "enrolled",
        "unenrolled_at": None,
    }


async def test_collection_get_answers_the_k42_fields(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str, read_key: str
) -> None:
    await add_program(async_engine, "lp_coffee")
    created = await _enroll(client, full_key)

    response = await client.post(GET, json={"id": created["id"]}, headers=bearer(read_key))

    assert response.status_code == 200
    assert response.json() == created
    assert {"id", "loyalty_program_id", "member_id", "created_at", "unredeemed_purchases"} <= set(
        response.json()
    )


@pytest.mark.parametrize(
    ("unredeemed", "owed", "to_next"), [(0, 0, 5), (3, 0, 2), (0, 1, 6), (0, 2, 7)]
)
async def test_a_collection_shows_the_purchases_its_next_reward_needs_debt_included(
    client: httpx.AsyncClient,
    async_engine: AsyncEngine,
    full_key: str,
    unredeemed: int,
    owed: int,
    to_next: int,
) -> None:
    # A refund of a purchase whose cycle was already rewarded leaves a debt, not a negative
    # count: the member then needs threshold + debt purchases.
    await add_program(async_engine, "lp_coffee", qualifying_threshold=5)
    created = await _enroll(client, full_key)
    async with transaction(async_engine) as conn:
        await conn.execute(
            update(StampCollection)
            .where(StampCollection.id == created["id"])
            .values(unredeemed_purchases=unredeemed, owed_stamps=owed)
        )

    got = await client.post(GET, json={"id": created["id"]}, headers=bearer(full_key))
    listed = await client.post(LIST, json={"member_id": "m_1"}, headers=bearer(full_key))

    for shown in (got.json(), listed.json()["data"][0]):
        assert shown["unredeemed_purchases"] == unredeemed
        assert shown["owed_stamps"] == owed
        assert shown["purchases_to_next_reward"] == to_next


async def test_second_enrollment_is_a_conflict_naming_the_existing_collection(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str
) -> None:
    await add_program(async_engine, "lp_coffee")
    first = await _enroll(client, full_key)

    again = await client.post(
        CREATE,
        json={"loyalty_program_id": "lp_coffee", "member_id": "m_1"},
        headers=bearer(full_key),
    )

    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_enrolled"
    assert first["id"] in again.json()["error"]["message"]


async def test_concurrent_enrollments_create_one_collection(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str
) -> None:
    await add_program(async_engine, "lp_coffee")
    body = {"loyalty_program_id": "lp_coffee", "member_id": "m_1"}

    answers = await asyncio.gather(
        *(client.post(CREATE, json=body, headers=bearer(full_key)) for _ in range(8))
    )

    assert sorted(a.status_code for a in answers) == [200] + [409] * 7
    async with async_engine.connect() as conn:
        rows = (await conn.execute(select(StampCollection.id))).all()
    assert len(rows) == 1


async def test_enrollment_in_unknown_archived_or_ended_program_is_not_found(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str
) -> None:
    await add_program(async_engine, "lp_archived", status="archived")
    await add_program(
        async_engine, "lp_ended", active_until=datetime.fromisoformat("2020-01-01T00:00:00Z")
    )

    for program in ("lp_unknown", "lp_archived", "lp_ended"):
        response = await client.post(
            CREATE,
            json={"loyalty_program_id": program, "member_id": "m_1"},
            headers=bearer(full_key),
        )
        assert response.status_code == 404
        assert response.json()["error"] == {
            "code": "not_found",
            "message": f"loyalty program {program!r} was not found",
        }


async def test_paused_program_still_takes_enrollments(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str
) -> None:
    await add_program(async_engine, "lp_paused", status="paused")

    assert (await _enroll(client, full_key, program="lp_paused"))["loyalty_program_id"] == (
        "lp_paused"
    )


async def test_collection_of_a_later_archived_program_stays_readable(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str
) -> None:
    await add_program(async_engine, "lp_coffee")
    created = await _enroll(client, full_key)
    await add_program(async_engine, "lp_coffee", status="archived", version=2)

    response = await client.post(GET, json={"id": created["id"]}, headers=bearer(full_key))

    assert response.status_code == 200


async def test_unknown_collection_is_not_found(client: httpx.AsyncClient, read_key: str) -> None:
    for path, body in (
        (GET, {"id": "sc_NOPE"}),
        (STAMPS, {"stamp_collection_id": "sc_NOPE"}),
        (REWARDS, {"stamp_collection_id": "sc_NOPE"}),
        (REWARD, {"id": "rw_NOPE"}),
    ):
        response = await client.post(path, json=body, headers=bearer(read_key))
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"


async def test_member_collections_list_every_enrollment_with_progress(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str
) -> None:
    for program in ("lp_a", "lp_b"):
        await add_program(async_engine, program)
        await _enroll(client, full_key, program=program)
    await _enroll(client, full_key, program="lp_a", member="someone else")

    response = await client.post(
        LIST, json={"member_id": "m_1", "pagination": {"limit": 20}}, headers=bearer(full_key)
    )

    body = response.json()
    assert [c["loyalty_program_id"] for c in body["data"]] == ["lp_a", "lp_b"]
    assert {c["member_id"] for c in body["data"]} == {"m_1"}
    assert body["page"] == {"page_size": 20, "cursor": None, "more": False}


async def test_stamp_history_shows_stamps_and_voids_in_order(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str
) -> None:
    await add_program(async_engine, "lp_coffee")
    collection = (await _enroll(client, full_key))["id"]
    await add_stamp(async_engine, collection, "p1")
    await add_stamp(
        async_engine,
        collection,
        "p2",
        status="voided",
        voided_at=datetime.fromisoformat("2024-03-02T10:00:00+01:00"),
        void_transaction_id="refund-1",
    )

    response = await client.post(
        STAMPS, json={"stamp_collection_id": collection}, headers=bearer(full_key)
    )

    assert response.status_code == 200
    first, second = response.json()["data"]
    assert RFC3339_UTC.fullmatch(first.pop("stamped_at"))
    assert first == {
        "purchase_id": "p1",
        "transaction_id": "tx-p1",
        "cycle": 1,
        "amount": 450,
        "currency": "GBP",
        "merchant": {"id": "m1", "name": "Corner Coffee"},
        "occurred_at": "2024-03-01T09:15:00Z",
        "status": "stamped",
        "voided_at": None,
        "void_transaction_id": None,
    }
    assert second["status"] == "voided"
    assert second["voided_at"] == "2024-03-02T09:00:00Z"
    assert second["void_transaction_id"] == "refund-1"


async def test_rewards_list_by_member_or_collection_and_get_one(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str
) -> None:
    await add_program(async_engine, "lp_coffee")
    await add_program(async_engine, "lp_tea")
    coffee = (await _enroll(client, full_key))["id"]
    tea = (await _enroll(client, full_key, program="lp_tea"))["id"]
    await add_reward(async_engine, "rw_1", coffee, cycle=1)
    await add_reward(async_engine, "rw_2", tea, cycle=1)

    by_member = await client.post(REWARDS, json={"member_id": "m_1"}, headers=bearer(full_key))
    by_collection = await client.post(
        REWARDS, json={"stamp_collection_id": tea}, headers=bearer(full_key)
    )
    one = await client.post(REWARD, json={"id": "rw_1"}, headers=bearer(full_key))

    assert [r["id"] for r in by_member.json()["data"]] == ["rw_1", "rw_2"]
    assert [r["id"] for r in by_collection.json()["data"]] == ["rw_2"]
    reward = one.json()
    assert RFC3339_UTC.fullmatch(reward.pop("created_at"))
    assert reward == {
        "id": "rw_1",
        "stamp_collection_id": coffee,
        "loyalty_program_id": "lp_coffee",
        "member_id": "m_1",
        "cycle": 1,
        "type": "refund",
        "amount": 450,
        "currency": "GBP",
        "transaction_id": "tx-rw_1",
        "purchase_id": "p-rw_1",
        "payout_published_at": None,
        "payout_status": "triggered",
        "payout_attempt": 1,
        "payout_reason": None,
        "payout_reported_at": None,
    }


async def test_rewards_list_needs_exactly_one_owner(
    client: httpx.AsyncClient, read_key: str
) -> None:
    for body in ({}, {"member_id": "m_1", "stamp_collection_id": "sc_A"}):
        response = await client.post(REWARDS, json=body, headers=bearer(read_key))
        assert response.status_code == 400
        assert "exactly one" in response.json()["error"]["message"]


async def test_the_wallet_list_carries_each_program_so_a_wallet_needs_no_more_calls(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str
) -> None:
    await add_program(async_engine, "lp_coffee", name="Coffee club", qualifying_threshold=5)
    await add_program(async_engine, "lp_bakery", name="Bakery", qualifying_threshold=3)
    coffee = await _enroll(client, full_key, "lp_coffee", "m_1")
    await _enroll(client, full_key, "lp_bakery", "m_1")

    listed = await client.post(LIST, json={"member_id": "m_1"}, headers=bearer(full_key))

    first = listed.json()["data"][0]
    assert first["id"] == coffee["id"]
    assert first["loyalty_program"]["name"] == "Coffee club"
    assert first["loyalty_program"]["qualifying_threshold"] == 5
    assert first["loyalty_program"]["display_content"]["reward"] == {"formatted": "1 free coffee"}
    assert [c["loyalty_program"]["id"] for c in listed.json()["data"]] == [
        "lp_coffee",
        "lp_bakery",
    ]


async def test_collections_are_listed_by_program_or_by_member_in_one_program(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str
) -> None:
    await add_program(async_engine, "lp_coffee")
    await add_program(async_engine, "lp_bakery")
    for member in ("m_1", "m_2"):
        for program in ("lp_coffee", "lp_bakery"):
            await _enroll(client, full_key, program, member)

    by_program = await client.post(
        LIST, json={"loyalty_program_id": "lp_coffee"}, headers=bearer(full_key)
    )
    both = await client.post(
        LIST,
        json={"member_id": "m_2", "loyalty_program_id": "lp_bakery"},
        headers=bearer(full_key),
    )
    neither = await client.post(LIST, json={}, headers=bearer(full_key))

    assert [(c["member_id"], c["loyalty_program_id"]) for c in by_program.json()["data"]] == [
        ("m_1", "lp_coffee"),
        ("m_2", "lp_coffee"),
    ]
    assert [(c["member_id"], c["loyalty_program_id"]) for c in both.json()["data"]] == [
        ("m_2", "lp_bakery")
    ]
    assert neither.status_code == 400


async def test_a_retried_enrollment_with_an_idempotency_key_gets_the_first_answer(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str
) -> None:
    await add_program(async_engine, "lp_coffee")
    body = {"loyalty_program_id": "lp_coffee", "member_id": "m_1"}
    headers = {**bearer(full_key), "Idempotency-Key": "enroll-m_1-lp_coffee"}

    first = await client.post(CREATE, json=body, headers=headers)
    retried = await client.post(CREATE, json=body, headers=headers)

    assert (first.status_code, retried.status_code) == (200, 200)
    assert retried.json() == first.json()
    assert retried.headers["Idempotent-Replayed"] == "true"
    async with async_engine.connect() as conn:
        assert len((await conn.execute(select(StampCollection.id))).all()) == 1


async def test_an_idempotency_key_reused_with_another_body_is_a_422(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str
) -> None:
    await add_program(async_engine, "lp_coffee")
    headers = {**bearer(full_key), "Idempotency-Key": "k-1"}
    await client.post(
        CREATE, json={"loyalty_program_id": "lp_coffee", "member_id": "m_1"}, headers=headers
    )

    reused = await client.post(
        CREATE, json={"loyalty_program_id": "lp_coffee", "member_id": "m_2"}, headers=headers
    )

    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"


async def test_an_idempotency_key_is_kept_a_day_then_the_retry_is_a_plain_409(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str
) -> None:
    await add_program(async_engine, "lp_coffee")
    body = {"loyalty_program_id": "lp_coffee", "member_id": "m_1"}
    headers = {**bearer(full_key), "Idempotency-Key": "k-1"}
    first = await client.post(CREATE, json=body, headers=headers)
    async with transaction(async_engine) as conn:
        await conn.execute(
            text("UPDATE idempotent_requests SET created_at = now() - interval '25 hours'")
        )

    late = await client.post(CREATE, json=body, headers=headers)

    assert late.status_code == 409
    assert late.json()["error"]["details"]["stamp_collection_id"] == first.json()["id"]


async def test_idempotency_keys_of_two_api_keys_never_meet(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str
) -> None:
    await add_program(async_engine, "lp_coffee")
    other = await issue_key(async_engine, Scope.FULL)
    one = await client.post(
        CREATE,
        json={"loyalty_program_id": "lp_coffee", "member_id": "m_1"},
        headers={**bearer(full_key), "Idempotency-Key": "same"},
    )
    two = await client.post(
        CREATE,
        json={"loyalty_program_id": "lp_coffee", "member_id": "m_2"},
        headers={**bearer(other), "Idempotency-Key": "same"},
    )

    assert (one.status_code, two.status_code) == (200, 200)
    assert one.json()["member_id"] == "m_1" and two.json()["member_id"] == "m_2"
