"""`wallet.stamp-collection/adjust`: support staff add or take away stamps, exactly once."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.database import transaction
from ledger.keys import Scope
from ledger.webhook_secrets import seal_secret
from tests.publisher_api.conftest import add_program, add_stamp, bearer, issue_key
from tests.webhooks.support import TEST_KEYRING

ADJUST = "/publisher.v1/wallet.stamp-collection/adjust"
CREATE = "/publisher.v1/wallet.stamp-collection/create"
GET = "/publisher.v1/wallet.stamp-collection/get"
STAMPS = "/publisher.v1/wallet.stamp-collection/stamps"
ENDPOINTS = "/publisher.v1/webhook-endpoint/list"
FIXED = {"type": "fixed-reward", "amount": 200, "currency": "GBP"}


@pytest.fixture
async def support_key(async_engine: AsyncEngine) -> str:
    return await issue_key(async_engine, Scope.SUPPORT)


@pytest.fixture
async def collection(client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str) -> str:
    """A member's collection (threshold 5, a fixed reward) holding one counted purchase."""
    await add_program(async_engine, "lp_coffee", qualifying_threshold=5, reward_config=FIXED)
    created = await client.post(
        CREATE,
        json={"loyalty_program_id": "lp_coffee", "member_id": "m_1"},
        headers=bearer(full_key),
    )
    sc = str(created.json()["id"])
    await add_stamp(async_engine, sc, "p1")
    async with transaction(async_engine) as conn:
        await conn.execute(
            text("UPDATE stamp_collections SET unredeemed_purchases = 1 WHERE id = :id"),
            {"id": sc},
        )
    return sc


def _body(sc: str, delta: int, key: str = "ticket-1", reason: str = "missed purchase") -> Any:
    return {"stamp_collection_id": sc, "delta": delta, "reason": reason, "idempotency_key": key}


async def test_a_support_key_adds_stamps_and_a_retry_answers_the_first_adjustment(
    client: httpx.AsyncClient, collection: str, support_key: str
) -> None:
    first = await client.post(ADJUST, json=_body(collection, 6), headers=bearer(support_key))
    retry = await client.post(ADJUST, json=_body(collection, 6), headers=bearer(support_key))
    shown = await client.post(GET, json={"id": collection}, headers=bearer(support_key))

    assert first.status_code == 200, first.text
    made = first.json()
    assert made["id"].startswith("adj_") and made["made_with_key"].startswith("key_")
    assert (made["delta"], made["unredeemed_purchases"], made["cycle"]) == (6, 2, 2)
    assert len(made["reward_ids"]) == 1
    assert retry.status_code == 200 and retry.json() == made
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert shown.json()["unredeemed_purchases"] == 2


async def test_a_deduction_beyond_the_count_is_owed_by_the_next_cycle(
    client: httpx.AsyncClient, collection: str, full_key: str
) -> None:
    answer = await client.post(ADJUST, json=_body(collection, -3), headers=bearer(full_key))
    shown = await client.post(GET, json={"id": collection}, headers=bearer(full_key))

    assert answer.status_code == 200, answer.text
    assert (answer.json()["unredeemed_purchases"], answer.json()["owed_stamps"]) == (0, 2)
    assert shown.json()["purchases_to_next_reward"] == 7


async def test_the_same_key_with_another_body_is_a_422_and_changes_nothing(
    client: httpx.AsyncClient, collection: str, support_key: str
) -> None:
    await client.post(ADJUST, json=_body(collection, 1), headers=bearer(support_key))
    reused = await client.post(ADJUST, json=_body(collection, 2), headers=bearer(support_key))
    shown = await client.post(GET, json={"id": collection}, headers=bearer(support_key))

    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert shown.json()["unredeemed_purchases"] == 2


@pytest.mark.parametrize("scope", [Scope.READ, Scope.ENROLL])
async def test_keys_of_other_scopes_may_not_adjust(
    client: httpx.AsyncClient, async_engine: AsyncEngine, collection: str, scope: Scope
) -> None:
    key = await issue_key(async_engine, scope)
    answer = await client.post(ADJUST, json=_body(collection, 1), headers=bearer(key))
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "forbidden"


async def test_a_support_key_reads_collections_but_neither_enrolls_nor_sees_webhooks(
    client: httpx.AsyncClient, collection: str, support_key: str
) -> None:
    enroll = {"loyalty_program_id": "lp_coffee", "member_id": "m_2"}
    assert (await client.post(GET, json={"id": collection}, headers=bearer(support_key))).is_success
    assert (await client.post(CREATE, json=enroll, headers=bearer(support_key))).status_code == 403
    assert (await client.post(ENDPOINTS, json={}, headers=bearer(support_key))).status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {"delta": 0},
        {"delta": 101},
        {"delta": -101},
        {"delta": 1.5},
        {"reason": ""},
        {"reason": "   "},
        {"reason": "x" * 501},
        {"idempotency_key": ""},
    ],
)
async def test_a_delta_or_reason_out_of_bounds_is_a_400(
    client: httpx.AsyncClient, collection: str, support_key: str, body: dict[str, Any]
) -> None:
    answer = await client.post(
        ADJUST, json={**_body(collection, 1), **body}, headers=bearer(support_key)
    )
    assert answer.status_code == 400, answer.text


async def test_an_unknown_collection_is_a_404(client: httpx.AsyncClient, support_key: str) -> None:
    answer = await client.post(ADJUST, json=_body("sc_NOPE", 1), headers=bearer(support_key))
    assert answer.status_code == 404


async def test_the_adjustment_is_announced_with_the_reward_it_completes(
    client: httpx.AsyncClient, async_engine: AsyncEngine, collection: str, support_key: str
) -> None:
    async with transaction(async_engine) as conn:
        await conn.execute(
            text(
                "INSERT INTO webhook_endpoints (id, url, event_types, secret) VALUES "
                "('ep_1', 'https://hooks.example.com/', CAST(:types AS jsonb), :secret)"
            ),
            {
                "types": json.dumps(["stamp.adjusted", "reward.triggered"]),
                "secret": seal_secret(TEST_KEYRING, "ep_1", "secret", "whsec_eA=="),
            },
        )
    made = (
        await client.post(ADJUST, json=_body(collection, 4), headers=bearer(support_key))
    ).json()

    async with transaction(async_engine) as conn:
        rows = (await conn.execute(text("SELECT event_type, body FROM webhook_messages"))).all()
    bodies = {r.event_type: json.loads(r.body) for r in rows}
    assert set(bodies) == {"stamp.adjusted", "reward.triggered"}
    data = bodies["stamp.adjusted"]["data"]
    assert data["adjustment"] == {"id": made["id"], "delta": 4, "reason": "missed purchase"}
    assert (data["unredeemed_purchases"], data["owed_stamps"], data["cycle"]) == (0, 0, 2)
    reward = bodies["reward.triggered"]["data"]
    assert reward["reward"]["id"] == made["reward_ids"][0]
    assert reward["transaction"]["purchase_id"] == "p1"


async def test_the_stamp_history_shows_each_adjustment_once_beside_its_page(
    client: httpx.AsyncClient, async_engine: AsyncEngine, collection: str, support_key: str
) -> None:
    await client.post(ADJUST, json=_body(collection, 1, key="a"), headers=bearer(support_key))
    await add_stamp(async_engine, collection, "p2")
    await client.post(ADJUST, json=_body(collection, -1, key="b"), headers=bearer(support_key))

    seen: list[tuple[int, str]] = []
    stamps: list[str] = []
    cursor = None
    while True:
        page = {"limit": 1, "cursor": cursor}
        answer = await client.post(
            STAMPS,
            json={"stamp_collection_id": collection, "pagination": page},
            headers=bearer(support_key),
        )
        assert answer.status_code == 200, answer.text
        stamps += [s["purchase_id"] for s in answer.json()["data"]]
        seen += [(a["delta"], a["reason"]) for a in answer.json()["adjustments"]]
        cursor = answer.json()["page"]["cursor"]
        if not answer.json()["page"]["more"]:
            break
    assert stamps == ["p1", "p2"]
    assert seen == [(1, "missed purchase"), (-1, "missed purchase")]


async def test_a_refund_program_answers_409_to_added_stamps(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str, support_key: str
) -> None:
    await add_program(async_engine, "lp_refund", qualifying_threshold=5)
    created = await client.post(
        CREATE,
        json={"loyalty_program_id": "lp_refund", "member_id": "m_2"},
        headers=bearer(full_key),
    )
    sc = str(created.json()["id"])
    answer = await client.post(ADJUST, json=_body(sc, 1), headers=bearer(support_key))
    assert answer.status_code == 409
    assert "send the missed purchase" in answer.json()["error"]["message"]
    taken = await client.post(ADJUST, json=_body(sc, -1, key="t-2"), headers=bearer(support_key))
    assert taken.status_code == 200 and taken.json()["owed_stamps"] == 1
