"""What is checked again when an attempt is made: the address (W15) and the secrets (W12)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from ledger.database import transaction
from ledger.webhook_endpoints import EndpointWithSecret, create_endpoint, rotate_secret
from tests.webhooks.receiver import Receiver
from tests.webhooks.support import (
    TEST_KEYRING,
    StubResolver,
    add_endpoint,
    all_settled,
    dispatching,
    enqueue,
    eventually,
    fast_settings,
    reward_triggered,
    rows,
    statuses,
)
from webhooks.urls import PUBLIC_ONLY, check_url

PUBLIC = "93.184.216.34"


async def register(engine: AsyncEngine, url: str, resolver: StubResolver) -> EndpointWithSecret:
    async def public_only(candidate: str) -> object:
        return await check_url(candidate, resolver, policy=PUBLIC_ONLY)

    async with transaction(engine) as conn:
        return await create_endpoint(
            conn,
            url=url,
            event_types=["reward.triggered"],
            check_url=public_only,
            keyring=TEST_KEYRING,
        )


async def last_error(engine: AsyncEngine) -> str:
    [attempt] = await rows(engine, "SELECT error FROM webhook_attempts")
    return str(attempt.error)


async def test_w15_dns_rebinding_to_loopback_is_refused_at_send_time(
    async_engine: AsyncEngine, receiver: Receiver
) -> None:
    # Public when registered, loopback when the dispatcher looks it up.
    resolver = StubResolver({"hooks.example.test": [[PUBLIC], ["127.0.0.1"]]})
    await register(async_engine, f"https://hooks.example.test:{receiver.port}/hook", resolver)
    await enqueue(async_engine, [reward_triggered()])
    settings = fast_settings(allowed_networks=(), retry_schedule_s=(0.0,))
    async with dispatching(async_engine, settings, resolver):
        await eventually(lambda: all_settled(async_engine))
    assert await last_error(async_engine) == (
        "refused: hooks.example.test resolves to an address that is loopback"
    )
    assert receiver.received == []
    assert await statuses(async_engine) == ["dead"]


async def test_w15_a_stored_private_address_is_refused_when_private_networks_are_no_longer_allowed(
    async_engine: AsyncEngine, receiver: Receiver
) -> None:
    await add_endpoint(async_engine, f"https://127.0.0.1:{receiver.port}/hook")
    await enqueue(async_engine, [reward_triggered()])
    settings = fast_settings(allowed_networks=(), retry_schedule_s=(0.0,))
    async with dispatching(async_engine, settings):
        await eventually(lambda: all_settled(async_engine))
    assert await last_error(async_engine) == "refused: 127.0.0.1: loopback"
    assert receiver.received == []


async def test_w15_the_connection_goes_to_the_checked_address_with_the_host_name_kept(
    async_engine: AsyncEngine, receiver: Receiver
) -> None:
    # `receiver.test` exists only in the stub: the request can arrive only through its answer.
    resolver = StubResolver({"receiver.test": [["127.0.0.1"]]})
    await add_endpoint(async_engine, receiver.url(host="receiver.test"), resolver=resolver)
    await enqueue(async_engine, [reward_triggered()])
    async with dispatching(async_engine, fast_settings(), resolver):
        await eventually(lambda: all_settled(async_engine))
    [request] = receiver.received
    assert request.headers["host"] == f"receiver.test:{receiver.port}"
    assert "receiver.test" in resolver.asked
    assert await statuses(async_engine) == ["delivered"]


async def _deliver_one(engine: AsyncEngine, receiver: Receiver, n: int) -> None:
    await enqueue(engine, [reward_triggered(n)])
    async with dispatching(engine, fast_settings()):
        await eventually(lambda: all_settled(engine))


async def test_w12_rotation_signs_with_both_secrets_during_grace_then_only_the_new_one(
    async_engine: AsyncEngine, receiver: Receiver
) -> None:
    created = await add_endpoint(async_engine, receiver.url())
    endpoint_id = created.endpoint.id
    await _deliver_one(async_engine, receiver, 1)
    async with transaction(async_engine) as conn:
        rotated = await rotate_secret(
            conn, endpoint_id, datetime.now(UTC), timedelta(hours=1), TEST_KEYRING
        )
    await _deliver_one(async_engine, receiver, 2)
    async with transaction(async_engine) as conn:
        final = await rotate_secret(
            conn, endpoint_id, datetime.now(UTC), timedelta(0), TEST_KEYRING
        )
    await _deliver_one(async_engine, receiver, 3)

    before, during, after = receiver.received
    assert len(before.headers["webhook-signature"].split()) == 1
    assert len(during.headers["webhook-signature"].split()) == 2
    for secret in (created.secret, rotated.secret):
        Webhook(secret).verify(during.body, during.headers)
    Webhook(final.secret).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(rotated.secret).verify(after.body, after.headers)
