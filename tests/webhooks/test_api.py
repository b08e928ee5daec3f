"""The publisher API's webhook calls, over the real database, through httpx."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from autostamp.settings import ApiSettings, WebhookSettings
from autostamp.wiring import api_config
from ledger import keys
from ledger.database import transaction
from ledger.events import EVENT_TYPES
from publisher_api import create_app
from tests.publisher_api.conftest import add_program
from tests.webhooks.support import TEST_KEYRING, StubResolver, enqueue, reward_triggered, rows
from webhooks.urls import PUBLIC_ONLY, url_policy

RESOLVER = StubResolver({"hooks.example.com": [["93.184.216.34"]]})
URL = "https://hooks.example.com/k42"


async def broker_up() -> bool:
    return True


public_only = url_policy(RESOLVER, policy=PUBLIC_ONLY)


@pytest.fixture
async def client(async_engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    limits = ApiSettings(rate_limit_per_minute=60_000, rate_limit_burst=10_000)
    webhooks = WebhookSettings(secret_grace_period_s=24 * 3600)
    app = create_app(
        api_config(limits, webhooks, TEST_KEYRING), async_engine, broker_up, public_only
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def key(engine: AsyncEngine, scope: keys.Scope) -> dict[str, str]:
    async with transaction(engine) as conn:
        issued = await keys.create_key(conn, f"{scope} key", scope)
    return {"Authorization": f"Bearer {issued.token}"}


async def test_an_admin_creates_an_endpoint_and_sees_its_secret_once(
    async_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    admin = await key(async_engine, keys.Scope.ADMIN)
    body = {"url": URL, "event_types": ["reward.triggered"], "description": "payouts"}
    created = await client.post("/publisher.v1/webhook-endpoint/create", json=body, headers=admin)
    assert created.status_code == 200, created.text
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_")
    assert endpoint["enabled"] is True
    got = await client.post(
        "/publisher.v1/webhook-endpoint/get", json={"id": endpoint["id"]}, headers=admin
    )
    assert "secret" not in got.json()
    listed = await client.post("/publisher.v1/webhook-endpoint/list", json={}, headers=admin)
    assert [e["id"] for e in listed.json()["data"]] == [endpoint["id"]]
    assert listed.json()["page"] == {"page_size": 50, "cursor": None, "more": False}


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://169.254.169.254/latest", "cloud metadata"),
        ("http://hooks.example.com/", "only https"),
        ("https://[::ffff:10.0.0.1]/", "private network"),
    ],
)
async def test_an_unsafe_url_is_a_400_with_the_reason(
    async_engine: AsyncEngine, client: httpx.AsyncClient, url: str, reason: str
) -> None:
    admin = await key(async_engine, keys.Scope.ADMIN)
    body = {"url": url, "event_types": ["reward.triggered"]}
    answer = await client.post("/publisher.v1/webhook-endpoint/create", json=body, headers=admin)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_request"
    assert reason in answer.json()["error"]["message"]


async def test_a_full_key_cannot_change_where_events_go(
    async_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    full = await key(async_engine, keys.Scope.FULL)
    body = {"url": URL, "event_types": ["reward.triggered"]}
    answer = await client.post("/publisher.v1/webhook-endpoint/create", json=body, headers=full)
    assert answer.status_code == 403
    redeliver = {"message_id": "msg_ABC"}
    answer = await client.post(
        "/publisher.v1/webhook-message/redeliver", json=redeliver, headers=full
    )
    assert answer.status_code == 403


@pytest.mark.parametrize("scope", [keys.Scope.READ, keys.Scope.FULL])
@pytest.mark.parametrize("call", ["list", "get", "deliveries"])
async def test_a_read_key_cannot_see_webhook_urls_nor_their_deliveries(
    async_engine: AsyncEngine, client: httpx.AsyncClient, scope: keys.Scope, call: str
) -> None:
    # A URL may carry the receiver's own credentials in its query; only an admin sees it.
    admin = await key(async_engine, keys.Scope.ADMIN)
    body = {"url": URL + "?token=receiver-s3cret", "event_types": ["reward.triggered"]}
    created = await client.post("/publisher.v1/webhook-endpoint/create", json=body, headers=admin)
    endpoint_id = created.json()["id"]
    await enqueue(async_engine, [reward_triggered(1)])
    bodies = {"list": {}, "get": {"id": endpoint_id}, "deliveries": {"endpoint_id": endpoint_id}}
    path = f"/publisher.v1/webhook-endpoint/{call}"

    refused = await client.post(path, json=bodies[call], headers=await key(async_engine, scope))
    allowed = await client.post(path, json=bodies[call], headers=admin)

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert "receiver-s3cret" not in refused.text
    assert allowed.status_code == 200


async def test_unknown_event_types_and_extra_fields_are_refused(
    async_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    admin = await key(async_engine, keys.Scope.ADMIN)
    for body in (
        {"url": URL, "event_types": ["payment.made"]},
        {"url": URL, "event_types": []},
        {"url": URL, "event_types": ["reward.triggered"], "secret": "whsec_mine"},
    ):
        answer = await client.post(
            "/publisher.v1/webhook-endpoint/create", json=body, headers=admin
        )
        assert answer.status_code == 400, body


async def test_lifecycle_deliveries_and_redelivery(
    async_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    admin = await key(async_engine, keys.Scope.ADMIN)
    call = "/publisher.v1/webhook-endpoint/"
    created = await client.post(
        call + "create", json={"url": URL, "event_types": ["reward.triggered"]}, headers=admin
    )
    endpoint_id = created.json()["id"]
    await enqueue(async_engine, [reward_triggered(1)])
    [message] = await rows(async_engine, "SELECT id FROM webhook_messages")
    async with transaction(async_engine) as conn:
        await conn.exec_driver_sql(
            "UPDATE webhook_deliveries SET status = 'dead', attempts = 8;"
            " INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, latency_ms)"
            " SELECT id, now(), 500, 20 FROM webhook_deliveries"
        )
    listed = await client.post(
        call + "deliveries", json={"endpoint_id": endpoint_id, "status": "dead"}, headers=admin
    )
    [delivery] = listed.json()["data"]
    assert delivery["message_id"] == message.id
    assert delivery["next_attempt_at"] is None
    assert [a["status_code"] for a in delivery["history"]] == [500]
    again = await client.post(
        "/publisher.v1/webhook-message/redeliver", json={"message_id": message.id}, headers=admin
    )
    assert again.json() == {"message_id": message.id, "deliveries": 1}
    rotated = await client.post(call + "rotate-secret", json={"id": endpoint_id}, headers=admin)
    assert rotated.json()["secret"] != created.json()["secret"]
    disabled = await client.post(call + "disable", json={"id": endpoint_id}, headers=admin)
    assert disabled.json()["enabled"] is False
    assert disabled.json()["disabled_reason"] == "disabled by request"
    enabled = await client.post(call + "enable", json={"id": endpoint_id}, headers=admin)
    assert enabled.json()["enabled"] is True
    assert enabled.json()["disabled_reason"] is None
    deleted = await client.post(call + "delete", json={"id": endpoint_id}, headers=admin)
    assert deleted.json() == {"id": endpoint_id, "deleted": True}
    gone = await client.post(call + "get", json={"id": endpoint_id}, headers=admin)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "not_found"


async def test_an_endpoint_created_without_event_types_gets_every_event_type(
    async_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    admin = await key(async_engine, keys.Scope.ADMIN)
    created = await client.post(
        "/publisher.v1/webhook-endpoint/create", json={"url": URL}, headers=admin
    )

    assert created.status_code == 200, created.text
    assert sorted(created.json()["event_types"]) == sorted(EVENT_TYPES)


async def test_enrolling_sends_stamp_collection_created_once_to_its_subscribers(
    async_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    admin = await key(async_engine, keys.Scope.ADMIN)
    await add_program(async_engine, "lp_coffee")
    endpoint = {"url": URL, "event_types": ["stamp_collection.created"]}
    await client.post("/publisher.v1/webhook-endpoint/create", json=endpoint, headers=admin)
    enroll = {"loyalty_program_id": "lp_coffee", "member_id": "m_1"}
    created = await client.post(
        "/publisher.v1/wallet.stamp-collection/create", json=enroll, headers=admin
    )
    again = await client.post(
        "/publisher.v1/wallet.stamp-collection/create", json=enroll, headers=admin
    )

    assert (created.status_code, again.status_code) == (200, 409)
    [message] = await rows(async_engine, "SELECT event_type, body FROM webhook_messages")
    assert message.event_type == "stamp_collection.created"
    body = orjson.loads(message.body)
    assert body["data"] == {
        "collection_id": created.json()["id"],
        "loyalty_program_id": "lp_coffee",
        "member_id": "m_1",
        "qualifying_threshold": created.json()["qualifying_threshold"],
    }
    [delivery] = await rows(async_engine, "SELECT status FROM webhook_deliveries")
    assert delivery.status == "pending"


async def test_events_of_a_disabled_endpoint_are_sent_when_it_is_enabled_again(
    async_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    admin = await key(async_engine, keys.Scope.ADMIN)
    await add_program(async_engine, "lp_coffee")
    endpoint = await client.post(
        "/publisher.v1/webhook-endpoint/create", json={"url": URL}, headers=admin
    )
    endpoint_id = endpoint.json()["id"]
    await client.post(
        "/publisher.v1/webhook-endpoint/disable", json={"id": endpoint_id}, headers=admin
    )
    await client.post(
        "/publisher.v1/wallet.stamp-collection/create",
        json={"loyalty_program_id": "lp_coffee", "member_id": "m_1"},
        headers=admin,
    )
    held = await rows(async_engine, "SELECT status FROM webhook_deliveries")

    enabled = await client.post(
        "/publisher.v1/webhook-endpoint/enable", json={"id": endpoint_id}, headers=admin
    )

    assert [row.status for row in held] == ["endpoint_disabled"]
    assert enabled.json()["enabled"] is True
    sent = await rows(async_engine, "SELECT status FROM webhook_deliveries")
    assert [row.status for row in sent] == ["pending"]


@pytest.mark.parametrize(
    "body",
    [
        {"url": URL, "description": "nul \x00 inside"},
        {"url": URL, "description": "lone \ud800 surrogate"},
        {"url": "https://hooks.example.com/\x00"},
    ],
)
async def test_text_the_database_cannot_hold_is_a_400_not_a_500(
    async_engine: AsyncEngine, client: httpx.AsyncClient, body: dict[str, str]
) -> None:
    admin = await key(async_engine, keys.Scope.ADMIN)
    content = json.dumps(body).encode()  # escapes the surrogate as JSON allows

    answer = await client.post(
        "/publisher.v1/webhook-endpoint/create",
        content=content,
        headers={**admin, "Content-Type": "application/json"},
    )

    assert answer.status_code == 400
