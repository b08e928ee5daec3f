"""Signing secrets at rest: sealed in the table, opened only to sign, forgotten when done."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.database import transaction
from ledger.errors import SecretKeyMissing, SecretUnreadable
from ledger.sealing import Keyring
from ledger.webhook_endpoints import delete_endpoint, rotate_secret
from ledger.webhook_secrets import forget_expired_secrets, open_secret, rewrap_secrets
from tests.webhooks.receiver import Receiver
from tests.webhooks.support import (
    NOW,
    TEST_KEY,
    TEST_KEYRING,
    FakeClock,
    add_endpoint,
    dispatching,
    enqueue,
    eventually,
    fast_settings,
    reward_triggered,
    rows,
)
from webhooks.signing import secret_key

NEW_KEY = base64.urlsafe_b64encode(b"n" * 32).decode()
ROTATED = Keyring.from_text(f"{NEW_KEY},{TEST_KEY}")
TABLE = "SELECT * FROM webhook_endpoints ORDER BY id"


async def table_text(engine: AsyncEngine) -> str:
    return repr([tuple(row) for row in await rows(engine, TABLE)])


async def stored(engine: AsyncEngine, endpoint_id: str, column: str) -> str:
    sql = f"SELECT {column} AS value FROM webhook_endpoints WHERE id = :id"
    [row] = await rows(engine, sql, id=endpoint_id)
    return str(row.value)


async def test_the_table_holds_no_secret_after_creating_and_rotating(
    async_engine: AsyncEngine,
) -> None:
    created = await add_endpoint(async_engine, "http://127.0.0.1:9/hook")
    async with transaction(async_engine) as conn:
        rotated = await rotate_secret(
            conn, created.endpoint.id, NOW, timedelta(hours=1), TEST_KEYRING
        )
    found = await table_text(async_engine)
    assert "whsec_" not in found
    for secret in (created.secret, rotated.secret):
        assert secret.removeprefix("whsec_") not in found
        assert base64.urlsafe_b64encode(secret_key(secret)).decode() not in found
    assert TEST_KEY not in found and TEST_KEY.rstrip("=") not in found


async def test_a_secret_sealed_under_an_old_key_opens_after_rotation_and_is_rewrapped(
    async_engine: AsyncEngine,
) -> None:
    created = await add_endpoint(async_engine, "http://127.0.0.1:9/hook")
    endpoint_id = created.endpoint.id
    old = await stored(async_engine, endpoint_id, "secret")
    assert open_secret(ROTATED, endpoint_id, "secret", old) == created.secret
    async with transaction(async_engine) as conn:
        assert await rewrap_secrets(conn, ROTATED) == 1
    new = await stored(async_engine, endpoint_id, "secret")
    assert new != old and ROTATED.primary_id in new
    assert open_secret(Keyring.from_text(NEW_KEY), endpoint_id, "secret", new) == created.secret
    async with transaction(async_engine) as conn:
        assert await rewrap_secrets(conn, ROTATED) == 0


async def test_a_key_that_did_not_seal_the_secret_says_so(async_engine: AsyncEngine) -> None:
    created = await add_endpoint(async_engine, "http://127.0.0.1:9/hook")
    sealed = await stored(async_engine, created.endpoint.id, "secret")
    with pytest.raises(SecretKeyMissing, match=f"sealed under key {TEST_KEYRING.primary_id}"):
        open_secret(Keyring.from_text(NEW_KEY), created.endpoint.id, "secret", sealed)


async def test_a_sealed_secret_copied_to_another_endpoint_does_not_open(
    async_engine: AsyncEngine,
) -> None:
    first = await add_endpoint(async_engine, "http://127.0.0.1:9/one")
    second = await add_endpoint(async_engine, "http://127.0.0.1:9/two")
    async with async_engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE webhook_endpoints SET secret = "
                "(SELECT secret FROM webhook_endpoints WHERE id = :first) WHERE id = :second"
            ),
            {"first": first.endpoint.id, "second": second.endpoint.id},
        )
    copied = await stored(async_engine, second.endpoint.id, "secret")
    with pytest.raises(SecretUnreadable, match="copied from another row"):
        open_secret(TEST_KEYRING, second.endpoint.id, "secret", copied)


async def test_a_sealed_secret_moved_to_the_previous_column_does_not_open(
    async_engine: AsyncEngine,
) -> None:
    created = await add_endpoint(async_engine, "http://127.0.0.1:9/hook")
    sealed = await stored(async_engine, created.endpoint.id, "secret")
    with pytest.raises(SecretUnreadable):
        open_secret(TEST_KEYRING, created.endpoint.id, "previous_secret", sealed)


async def test_the_previous_secret_is_forgotten_when_its_grace_period_ends(
    async_engine: AsyncEngine,
) -> None:
    created = await add_endpoint(async_engine, "http://127.0.0.1:9/hook")
    async with transaction(async_engine) as conn:
        await rotate_secret(conn, created.endpoint.id, NOW, timedelta(hours=1), TEST_KEYRING)
        assert await forget_expired_secrets(conn, NOW + timedelta(minutes=59)) == 0
        assert await forget_expired_secrets(conn, NOW + timedelta(hours=1)) == 1
    [row] = await rows(
        async_engine, "SELECT previous_secret, previous_secret_expires_at FROM webhook_endpoints"
    )
    assert tuple(row) == (None, None)


async def test_the_dispatcher_forgets_previous_secrets_past_their_grace(
    async_engine: AsyncEngine, receiver: Receiver
) -> None:
    created = await add_endpoint(async_engine, receiver.url())
    now = datetime.now(UTC)
    async with transaction(async_engine) as conn:
        await rotate_secret(conn, created.endpoint.id, now, timedelta(hours=1), TEST_KEYRING)
    await enqueue(async_engine, [reward_triggered()])
    clock = FakeClock(now + timedelta(hours=2))

    async def forgotten() -> bool:
        [row] = await rows(async_engine, "SELECT previous_secret FROM webhook_endpoints")
        return row.previous_secret is None and len(receiver.received) == 1

    async with dispatching(async_engine, fast_settings(), clock=clock):
        await eventually(forgotten)
    # Past its grace, the old secret signed nothing: one signature.
    assert len(receiver.received[0].headers["webhook-signature"].split()) == 1


async def test_a_deleted_endpoint_keeps_no_secret(async_engine: AsyncEngine) -> None:
    created = await add_endpoint(async_engine, "http://127.0.0.1:9/hook")
    async with transaction(async_engine) as conn:
        await rotate_secret(conn, created.endpoint.id, NOW, timedelta(hours=1), TEST_KEYRING)
        await delete_endpoint(conn, created.endpoint.id, NOW)
    [row] = await rows(
        async_engine,
        "SELECT secret, previous_secret, previous_secret_expires_at FROM webhook_endpoints",
    )
    assert tuple(row) == (None, None, None)


async def test_the_database_refuses_a_plaintext_secret(async_engine: AsyncEngine) -> None:
    created = await add_endpoint(async_engine, "http://127.0.0.1:9/hook")
    with pytest.raises(Exception, match="ck_webhook_endpoints_secret_sealed"):
        async with async_engine.begin() as conn:
            await conn.execute(
                text("UPDATE webhook_endpoints SET secret = :s WHERE id = :id"),
                {"s": created.secret, "id": created.endpoint.id},
            )
