"""Webhook endpoints: register, list, enable and disable, delete, rotate the signing secret."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    DateTime,
    Row,
    String,
    Text,
    cast,
    column,
    insert,
    or_,
    select,
    update,
    values,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.errors import NotFound
from ledger.events import EVENT_TYPES
from ledger.ids import new_id
from ledger.pages import Page, Position, keyset, page_of
from ledger.schema import WebhookDelivery, WebhookEndpoint
from ledger.sealing import Keyring
from ledger.webhook_secrets import open_secret, seal_secret

SECRET_PREFIX = "whsec_"  # noqa: S105 (the marker of a secret, not one)
SECRET_BYTES = 32  # Standard Webhooks: 24 to 64 random bytes.
MAX_URL_CHARS = 2048
MAX_DESCRIPTION_CHARS = 500
BY_REQUEST = "disabled by request"

# Raises ledger.errors.UnsafeUrl for a URL we refuse to call; `webhooks.urls` has the policy.
UrlCheck = Callable[[str], Awaitable[object]]


@dataclass(frozen=True)
class EndpointRecord:
    """A URL that receives the event types it subscribed to; its secret is never shown again."""

    id: str
    url: str
    description: str
    event_types: tuple[str, ...]
    disabled_at: datetime | None
    disabled_reason: str | None
    # When its current run of failed attempts began; None while its last attempt succeeded.
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None


@dataclass(frozen=True)
class EndpointWithSecret:
    """An endpoint with its new signing secret, shown this once: at creation and at rotation."""

    endpoint: EndpointRecord
    secret: str = field(repr=False)


@dataclass(frozen=True)
class Disabling:
    """An endpoint to disable, and why; with `failing_since`, only while that run of failures
    goes on (a success recorded meanwhile ended it)."""

    endpoint_id: str
    reason: str
    failing_since: datetime | None = None


def new_secret() -> str:
    """A fresh signing secret, `whsec_` and the base64 of its random key bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def checked_event_types(event_types: Sequence[str]) -> tuple[str, ...]:
    """The subscription without repeats, in the order given; raises ValueError if unknown."""
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown:
        raise ValueError(f"unknown event types {unknown}; choose from {list(EVENT_TYPES)}")
    if not event_types:
        raise ValueError("subscribe to at least one event type")
    return tuple(dict.fromkeys(event_types))


_ENDPOINT = (
    WebhookEndpoint.id,
    WebhookEndpoint.url,
    WebhookEndpoint.description,
    WebhookEndpoint.event_types,
    WebhookEndpoint.disabled_at,
    WebhookEndpoint.disabled_reason,
    WebhookEndpoint.failing_since,
    WebhookEndpoint.created_at,
    WebhookEndpoint.updated_at,
)


def _endpoint(row: Row[*tuple[Any, ...]]) -> EndpointRecord:
    values = row._asdict()
    values["event_types"] = tuple(values["event_types"])
    return EndpointRecord(**values)


def _position(endpoint: EndpointRecord) -> Position:
    return Position(endpoint.created_at, endpoint.id)


def _live() -> Any:
    return WebhookEndpoint.deleted_at.is_(None)


async def create_endpoint(
    conn: AsyncConnection,
    *,
    url: str,
    event_types: Sequence[str],
    description: str = "",
    check_url: UrlCheck,
    keyring: Keyring,
) -> EndpointWithSecret:
    """Register an endpoint after `check_url` accepted its URL; only later events reach it.

    Its secret is stored sealed with `keyring`.
    """
    if len(url) > MAX_URL_CHARS or len(description) > MAX_DESCRIPTION_CHARS:
        raise ValueError(f"url is limited to {MAX_URL_CHARS} and description to 500 characters")
    subscribed = checked_event_types(event_types)
    await check_url(url)
    secret, endpoint_id = new_secret(), new_id("ep")
    stmt = (
        insert(WebhookEndpoint)
        .values(
            id=endpoint_id,
            url=url,
            description=description,
            event_types=list(subscribed),
            secret=seal_secret(keyring, endpoint_id, "secret", secret),
        )
        .returning(*_ENDPOINT)
    )
    row = (await conn.execute(stmt)).one()
    return EndpointWithSecret(_endpoint(row), secret)


async def get_endpoint(conn: AsyncConnection, endpoint_id: str) -> EndpointRecord:
    """One endpoint that was not deleted; raises NotFound."""
    stmt = select(*_ENDPOINT).where(WebhookEndpoint.id == endpoint_id, _live())
    row = (await conn.execute(stmt)).one_or_none()
    if row is None:
        raise NotFound("webhook endpoint", endpoint_id)
    return _endpoint(row)


async def list_endpoints(
    conn: AsyncConnection, limit: int, after: Position | None = None
) -> Page[EndpointRecord]:
    """The endpoints not deleted, oldest first."""
    stmt = select(*_ENDPOINT).where(_live())
    stmt = keyset(stmt, WebhookEndpoint.created_at, WebhookEndpoint.id, after, limit)
    rows = (await conn.execute(stmt)).all()
    return page_of([_endpoint(row) for row in rows], limit, _position)


async def _update(conn: AsyncConnection, endpoint_id: str, **values: Any) -> EndpointRecord:
    stmt = (
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, _live())
        .values(**values)
        .returning(*_ENDPOINT)
    )
    row = (await conn.execute(stmt)).one_or_none()
    if row is None:
        raise NotFound("webhook endpoint", endpoint_id)
    return _endpoint(row)


async def _stop_deliveries(
    conn: AsyncConnection, endpoint_ids: Sequence[str], now: datetime
) -> None:
    # Ends the pending deliveries in a final state, so none is left waiting forever.
    await conn.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id.in_(endpoint_ids), WebhookDelivery.status == "pending")
        .values(status="endpoint_disabled", updated_at=now)
    )


async def disable_endpoint(
    conn: AsyncConnection, endpoint_id: str, now: datetime
) -> EndpointRecord:
    """Stop sending to the endpoint; its pending deliveries end as `endpoint_disabled`."""
    endpoint = await _update(
        conn, endpoint_id, disabled_at=now, disabled_reason=BY_REQUEST, updated_at=now
    )
    await _stop_deliveries(conn, [endpoint_id], now)
    return endpoint


async def disable_failing_endpoints(
    conn: AsyncConnection, disablings: Sequence[Disabling], now: datetime
) -> dict[str, str]:
    """Disable endpoints the dispatcher gave up on, as `disable_endpoint` does, with the reason.

    Returns those it disabled, endpoint id to reason: not those disabled already.
    """
    given = values(
        column("id", String),
        column("reason", Text),
        column("since", DateTime(timezone=True)),
        name="given",
    ).data([(d.endpoint_id, d.reason, d.failing_since) for d in disablings])
    # A column of VALUES that holds only NULLs is text to PostgreSQL.
    since = cast(given.c.since, DateTime(timezone=True))
    stmt = (
        update(WebhookEndpoint)
        .where(
            WebhookEndpoint.id == given.c.id,
            WebhookEndpoint.disabled_at.is_(None),
            or_(given.c.since.is_(None), WebhookEndpoint.failing_since == since),
        )
        .values(disabled_at=now, disabled_reason=given.c.reason, updated_at=now)
        .returning(WebhookEndpoint.id, WebhookEndpoint.disabled_reason)
    )
    disabled = {row.id: row.disabled_reason for row in await conn.execute(stmt)}
    if disabled:
        await _stop_deliveries(conn, list(disabled), now)
    return disabled


async def enable_endpoint(
    conn: AsyncConnection, endpoint_id: str, now: datetime, held_for: timedelta
) -> EndpointRecord:
    """Send to the endpoint again: new events, and the ones it missed while disabled.

    Deliveries held while it was disabled (or pending when it was disabled) resume now if
    their event is at most `held_for` old; older ones stay `endpoint_disabled`, to be
    redelivered on request. Its run of failures starts afresh.
    """
    endpoint = await _update(
        conn,
        endpoint_id,
        disabled_at=None,
        disabled_reason=None,
        failing_since=None,
        updated_at=now,
    )
    await conn.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.status == "endpoint_disabled",
            WebhookDelivery.created_at >= now - held_for,
        )
        .values(status="pending", next_attempt_at=now, updated_at=now)
    )
    return endpoint


async def delete_endpoint(conn: AsyncConnection, endpoint_id: str, now: datetime) -> None:
    """Remove the endpoint from view and forget its secrets; its deliveries and attempts stay
    for the record."""
    await _update(
        conn,
        endpoint_id,
        secret=None,
        previous_secret=None,
        previous_secret_expires_at=None,
        deleted_at=now,
        disabled_at=now,
        disabled_reason="deleted",
        updated_at=now,
    )
    await _stop_deliveries(conn, [endpoint_id], now)


async def rotate_secret(
    conn: AsyncConnection,
    endpoint_id: str,
    now: datetime,
    grace: timedelta,
    keyring: Keyring,
) -> EndpointWithSecret:
    """A new secret signs from now on; the old one signs too until `now + grace`.

    The old one is opened and sealed again as the previous secret: a sealed value is bound
    to its column.
    """
    stmt = (
        select(WebhookEndpoint.secret)
        .where(WebhookEndpoint.id == endpoint_id, _live())
        .with_for_update()
    )
    current = (await conn.execute(stmt)).scalar_one_or_none()
    if current is None:
        raise NotFound("webhook endpoint", endpoint_id)
    previous = open_secret(keyring, endpoint_id, "secret", current)
    secret = new_secret()
    endpoint = await _update(
        conn,
        endpoint_id,
        previous_secret=seal_secret(keyring, endpoint_id, "previous_secret", previous),
        previous_secret_expires_at=now + grace,
        secret=seal_secret(keyring, endpoint_id, "secret", secret),
        updated_at=now,
    )
    return EndpointWithSecret(endpoint, secret)
