"""A reward's life after it is triggered: the payout system reports it paid or failed."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.webhook_secrets import seal_secret
from tests.publisher_api.conftest import add_program, add_reward, bearer
from tests.webhooks.support import TEST_KEYRING

REPORT = "/publisher.v1/reward/report-payout"
RETRY = "/publisher.v1/reward/retry-payout"
GET = "/publisher.v1/reward/get"
CREATE = "/publisher.v1/wallet.stamp-collection/create"


@pytest.fixture
async def reward(client: httpx.AsyncClient, async_engine: AsyncEngine, admin_key: str) -> str:
    await add_program(async_engine, "lp_coffee")
    enrolled = await client.post(
        CREATE,
        json={"loyalty_program_id": "lp_coffee", "member_id": "m_1"},
        headers=bearer(admin_key),
    )
    await add_reward(async_engine, "rw_1", enrolled.json()["id"], cycle=1)
    async with async_engine.begin() as conn:  # a subscriber, so the settled events are written
        await conn.execute(
            text(
                "INSERT INTO webhook_endpoints (id, url, event_types, secret) VALUES "
                "('ep_1', 'https://hooks.example.com/', '[\"reward.paid\", \"reward.failed\"]', "
                ":secret)"
            ),
            {"secret": seal_secret(TEST_KEYRING, "ep_1", "secret", "whsec_eA==")},
        )
    return "rw_1"


def paid(attempt: int = 1, at: str = "2026-12-01T10:00:00Z") -> dict[str, Any]:
    return {"reward_id": "rw_1", "attempt": attempt, "outcome": "paid", "reported_at": at}


def failed(attempt: int = 1, at: str = "2026-12-01T10:00:00Z", why: str = "card closed") -> Any:
    return {**paid(attempt, at), "outcome": "failed", "reason": why}


async def settled_events(engine: AsyncEngine) -> list[tuple[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT event_type, body FROM webhook_messages ORDER BY created_at, id")
        )
        return [(row.event_type, orjson.loads(row.body)["data"]["payout"]) for row in rows]


async def test_a_reported_payment_shows_on_the_reward_and_is_announced_once(
    client: httpx.AsyncClient, async_engine: AsyncEngine, admin_key: str, reward: str
) -> None:
    first = await client.post(REPORT, json=paid(), headers=bearer(admin_key))
    again = await client.post(REPORT, json=paid(), headers=bearer(admin_key))
    shown = await client.post(GET, json={"id": reward}, headers=bearer(admin_key))

    assert first.status_code == again.status_code == 200
    assert shown.json()["payout_status"] == "paid"
    assert shown.json()["payout_reported_at"] == "2026-12-01T10:00:00Z"
    assert await settled_events(async_engine) == [("reward.paid", {"attempt": 1, "reason": None})]


async def test_a_late_failure_never_unpays_a_paid_reward(
    client: httpx.AsyncClient, async_engine: AsyncEngine, admin_key: str, reward: str
) -> None:
    await client.post(REPORT, json=paid(at="2026-12-01T10:05:00Z"), headers=bearer(admin_key))
    await client.post(REPORT, json=failed(at="2026-12-01T10:00:00Z"), headers=bearer(admin_key))

    shown = await client.post(GET, json={"id": reward}, headers=bearer(admin_key))

    assert shown.json()["payout_status"] == "paid"
    assert [kind for kind, _ in await settled_events(async_engine)] == ["reward.paid"]


async def test_a_failed_payout_is_retried_with_the_same_key_and_a_stale_failure_is_ignored(
    client: httpx.AsyncClient, async_engine: AsyncEngine, admin_key: str, reward: str
) -> None:
    await client.post(REPORT, json=failed(why="issuer timeout"), headers=bearer(admin_key))
    failed_shown = await client.post(GET, json={"id": reward}, headers=bearer(admin_key))
    retried = await client.post(RETRY, json={"id": reward}, headers=bearer(admin_key))
    stale = await client.post(
        REPORT, json=failed(1, "2026-12-01T11:00:00Z", "late"), headers=bearer(admin_key)
    )
    await client.post(REPORT, json=paid(2, "2026-12-01T12:00:00Z"), headers=bearer(admin_key))
    final = await client.post(GET, json={"id": reward}, headers=bearer(admin_key))

    assert failed_shown.json()["payout_status"] == "failed"
    assert failed_shown.json()["payout_reason"] == "issuer timeout"
    assert retried.json()["payout_status"] == "triggered"
    assert retried.json()["payout_attempt"] == 2
    assert retried.json()["payout_published_at"] is None  # the relay publishes it again
    assert stale.json()["payout_status"] == "triggered"
    assert final.json()["payout_status"] == "paid"
    assert await settled_events(async_engine) == [
        ("reward.failed", {"attempt": 1, "reason": "issuer timeout"}),
        ("reward.paid", {"attempt": 2, "reason": None}),
    ]


async def test_only_a_failed_payout_can_be_retried_and_unknown_attempts_are_refused(
    client: httpx.AsyncClient, admin_key: str, reward: str
) -> None:
    not_failed = await client.post(RETRY, json={"id": reward}, headers=bearer(admin_key))
    future = await client.post(REPORT, json=paid(attempt=2), headers=bearer(admin_key))
    unknown = await client.post(
        REPORT, json={**paid(), "reward_id": "rw_NOPE"}, headers=bearer(admin_key)
    )
    no_reason = await client.post(
        REPORT, json={**paid(), "outcome": "failed"}, headers=bearer(admin_key)
    )

    assert not_failed.status_code == 409
    assert future.status_code == 400
    assert unknown.status_code == 404
    assert no_reason.status_code == 400


async def test_reports_need_an_admin_key(
    client: httpx.AsyncClient, full_key: str, reward: str
) -> None:
    answer = await client.post(REPORT, json=paid(), headers=bearer(full_key))

    assert answer.status_code == 403
