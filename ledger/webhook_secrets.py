"""Webhook signing secrets at rest: sealed per endpoint and column, rewrapped, forgotten.

`secret` and `previous_secret` hold `ledger.sealing` text, never a `whsec_` value: the
database's checks refuse plaintext, and the secrets of a deleted endpoint. A sealed value
names its endpoint and column, so copied to another row it does not open.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.schema import WebhookEndpoint
from ledger.sealing import Keyring

SECRET_COLUMNS = ("secret", "previous_secret")


def secret_context(endpoint_id: str, column: str) -> str:
    """What a sealed secret is bound to: its table, column and endpoint."""
    return f"webhook_endpoints.{column}/{endpoint_id}"


def seal_secret(keyring: Keyring, endpoint_id: str, column: str, secret: str) -> str:
    return keyring.seal(secret, secret_context(endpoint_id, column))


def open_secret(keyring: Keyring, endpoint_id: str, column: str, sealed: str) -> str:
    """The `whsec_` secret; raises SecretKeyMissing or SecretUnreadable."""
    return keyring.open(sealed, secret_context(endpoint_id, column))


def _stale(keyring: Keyring, column: str) -> ColumnElement[bool]:
    stored = getattr(WebhookEndpoint, column)
    return and_(stored.is_not(None), stored.not_like(f"sealed.v1.{keyring.primary_id}.%"))


async def rewrap_secrets(conn: AsyncConnection, keyring: Keyring) -> int:
    """Seal every stored secret under the first key; how many were under another. Idempotent.

    Each value is opened with the key that sealed it, which must still be in the keyring.
    """
    stmt = (
        select(WebhookEndpoint.id, WebhookEndpoint.secret, WebhookEndpoint.previous_secret)
        .where(or_(*(_stale(keyring, column) for column in SECRET_COLUMNS)))
        .order_by(WebhookEndpoint.id)
        .with_for_update()
    )
    moved = 0
    for row in (await conn.execute(stmt)).all():
        values: dict[str, str] = {}
        for column in SECRET_COLUMNS:
            sealed = getattr(row, column)
            if sealed is None or sealed.startswith(f"sealed.v1.{keyring.primary_id}."):
                continue
            secret = open_secret(keyring, row.id, column, sealed)
            values[column] = seal_secret(keyring, row.id, column, secret)
        moved += len(values)
        await conn.execute(
            update(WebhookEndpoint).where(WebhookEndpoint.id == row.id).values(**values)
        )
    return moved


async def forget_expired_secrets(conn: AsyncConnection, now: datetime) -> int:
    """Drop the previous secrets whose grace period has ended; how many there were."""
    stmt = (
        update(WebhookEndpoint)
        .where(WebhookEndpoint.previous_secret_expires_at <= now)
        .values(previous_secret=None, previous_secret_expires_at=None)
    )
    return (await conn.execute(stmt)).rowcount
