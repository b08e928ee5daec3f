"""Endpoint management and the delivery record, on the real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.database import transaction
from ledger.errors import NotFound, UnsafeUrl
from ledger.webhook_deliveries import list_deliveries, redeliver_dead, redeliver_message
from ledger.webhook_endpoints import (
    create_endpoint,
    delete_endpoint,
    disable_endpoint,
    enable_endpoint,
    get_endpoint,
    list_endpoints,
    rotate_secret,
)
from ledger.webhook_secrets import open_secret
from tests.webhooks.support import (
    NOW,
    TEST_KEYRING,
    StubResolver,
    add_endpoint,
    enqueue,
    reward_triggered,
    rows,
    statuses,
)
from webhooks.urls import PUBLIC_ONLY, check_url


async def refuse_private(url: str) -> object:
    return await check_url(url, StubResolver(), policy=PUBLIC_ONLY)


async def test_creating_an_endpoint_shows_its_secret_once(async_engine: AsyncEngine) -> None:
    created = await add_endpoint(async_engine, "http://127.0.0.1:9/hook", ["reward.triggered"])
    assert created.secret.startswith("whsec_")
    async with transaction(async_engine) as conn:
        found = await get_endpoint(conn, created.endpoint.id)
    assert found == created.endpoint
    assert found.event_types == ("reward.triggered",)
    assert found.enabled
    assert not hasattr(found, "secret")


@pytest.mark.parametrize("event_types", [[], ["stamp.collected", "payment.made"]])
async def test_a_subscription_names_known_event_types(
    async_engine: AsyncEngine, event_types: list[str]
) -> None:
    with pytest.raises(ValueError, match="event type"):
        await add_endpoint(async_engine, "http://127.0.0.1:9/hook", event_types)


async def test_an_unsafe_url_is_refused_and_nothing_is_stored(async_engine: AsyncEngine) -> None:
    with pytest.raises(UnsafeUrl, match="loopback"):
        async with transaction(async_engine) as conn:
            await create_endpoint(
                conn,
                url="https://127.0.0.1/hook",
                event_types=["reward.triggered"],
                check_url=refuse_private,
                keyring=TEST_KEYRING,
            )
    assert await rows(async_engine, "SELECT id FROM webhook_endpoints") == []


async def test_endpoints_are_listed_in_pages_oldest_first(async_engine: AsyncEngine) -> None:
    made = [
        (await add_endpoint(async_engine, f"http://127.0.0.1:9/{n}")).endpoint for n in range(5)
    ]
    async with transaction(async_engine) as conn:
        first = await list_endpoints(conn, limit=3)
        assert first.next is not None
        second = await list_endpoints(conn, limit=3, after=first.next)
    assert [e.id for e in [*first.items, *second.items]] == [e.id for e in made]
    assert not second.more


async def test_a_disabled_endpoint_holds_its_deliveries_and_enabling_sends_them(
    async_engine: AsyncEngine,
) -> None:
    endpoint = (await add_endpoint(async_engine, "http://127.0.0.1:9/hook")).endpoint
    await enqueue(async_engine, [reward_triggered(1)])
    async with transaction(async_engine) as conn:
        disabled = await disable_endpoint(conn, endpoint.id, NOW)
    await enqueue(async_engine, [reward_triggered(2)])
    assert not disabled.enabled
    assert await statuses(async_engine) == ["endpoint_disabled", "endpoint_disabled"]
    async with transaction(async_engine) as conn:
        now = datetime.now(UTC)
        assert (await enable_endpoint(conn, endpoint.id, now, timedelta(days=3))).enabled
    await enqueue(async_engine, [reward_triggered(3)])
    assert await statuses(async_engine) == ["pending", "pending", "pending"]


async def test_enabling_leaves_what_is_older_than_the_hold_for_a_redeliver(
    async_engine: AsyncEngine,
) -> None:
    endpoint = (await add_endpoint(async_engine, "http://127.0.0.1:9/hook")).endpoint
    async with transaction(async_engine) as conn:
        await disable_endpoint(conn, endpoint.id, NOW)
    await enqueue(async_engine, [reward_triggered(1)])
    later = datetime.now(UTC) + timedelta(days=3, seconds=1)
    async with transaction(async_engine) as conn:
        await enable_endpoint(conn, endpoint.id, later, timedelta(days=3))
    assert await statuses(async_engine) == ["endpoint_disabled"]


async def test_a_deleted_endpoint_is_gone_from_view_but_its_record_stays(
    async_engine: AsyncEngine,
) -> None:
    endpoint = (await add_endpoint(async_engine, "http://127.0.0.1:9/hook")).endpoint
    await enqueue(async_engine, [reward_triggered(1)])
    async with transaction(async_engine) as conn:
        await delete_endpoint(conn, endpoint.id, NOW)
        with pytest.raises(NotFound):
            await get_endpoint(conn, endpoint.id)
        assert (await list_endpoints(conn, limit=10)).items == []
        with pytest.raises(NotFound):
            await delete_endpoint(conn, endpoint.id, NOW)
    assert await statuses(async_engine) == ["endpoint_disabled"]


async def test_rotation_keeps_the_old_secret_for_the_grace_period(
    async_engine: AsyncEngine,
) -> None:
    created = await add_endpoint(async_engine, "http://127.0.0.1:9/hook")
    async with transaction(async_engine) as conn:
        rotated = await rotate_secret(
            conn, created.endpoint.id, NOW, timedelta(hours=24), TEST_KEYRING
        )
    [row] = await rows(
        async_engine,
        "SELECT secret, previous_secret, previous_secret_expires_at FROM webhook_endpoints",
    )
    opened = (
        open_secret(TEST_KEYRING, created.endpoint.id, "secret", row.secret),
        open_secret(TEST_KEYRING, created.endpoint.id, "previous_secret", row.previous_secret),
    )
    assert opened == (rotated.secret, created.secret)
    assert row.previous_secret_expires_at == NOW + timedelta(hours=24)
    assert rotated.secret != created.secret


async def test_unknown_ids_are_not_found(async_engine: AsyncEngine) -> None:
    async with transaction(async_engine) as conn:
        with pytest.raises(NotFound):
            await rotate_secret(conn, "ep_nope", NOW, timedelta(0), TEST_KEYRING)
        with pytest.raises(NotFound):
            await redeliver_message(conn, "msg_nope", NOW)
        with pytest.raises(NotFound):
            await list_deliveries(conn, "ep_nope", limit=10)


async def test_deliveries_are_listed_with_their_attempts(async_engine: AsyncEngine) -> None:
    endpoint = (await add_endpoint(async_engine, "http://127.0.0.1:9/hook")).endpoint
    await enqueue(async_engine, [reward_triggered(1), reward_triggered(2)])
    [first, _] = await rows(async_engine, "SELECT id FROM webhook_deliveries ORDER BY id")
    async with transaction(async_engine) as conn:
        await conn.exec_driver_sql(
            "INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, latency_ms)"
            f" VALUES ({first.id}, now(), 500, 12), ({first.id}, now(), 200, 8)"
        )
        page = await list_deliveries(conn, endpoint.id, limit=10)
        dead = await list_deliveries(conn, endpoint.id, limit=10, status="dead")
    assert [d.event_type for d in page.items] == ["reward.triggered"] * 2
    assert [a.status_code for a in page.items[0].history] == [500, 200]
    assert page.items[1].history == ()
    assert dead.items == []


async def test_dead_deliveries_since_a_time_start_a_new_chain(async_engine: AsyncEngine) -> None:
    await add_endpoint(async_engine, "http://127.0.0.1:9/hook")
    await enqueue(async_engine, [reward_triggered(n) for n in range(3)])
    async with transaction(async_engine) as conn:
        await conn.exec_driver_sql(
            "UPDATE webhook_deliveries SET status = 'dead', attempts = 3,"
            " updated_at = CASE WHEN id = 1 THEN now() - interval '2 days' ELSE now() END"
        )
    yesterday = datetime.now(UTC) - timedelta(days=1)
    async with transaction(async_engine) as conn:
        assert await redeliver_dead(conn, yesterday, datetime.now(UTC)) == 2
        assert await redeliver_dead(conn, yesterday, datetime.now(UTC)) == 0
    found = await rows(async_engine, "SELECT id, status, attempts FROM webhook_deliveries")
    assert {(r.id, r.status, r.attempts) for r in found} == {
        (1, "dead", 3),
        (2, "pending", 0),
        (3, "pending", 0),
    }
