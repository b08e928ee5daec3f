"""What the outbox sent: deliveries and their attempts, and redelivery of what failed."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, exists, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.errors import NotFound
from ledger.pages import Page, Position, keyset, page_of
from ledger.schema import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookMessage

DELIVERY_STATUSES = ("pending", "delivered", "dead", "endpoint_disabled")


@dataclass(frozen=True)
class AttemptRecord:
    """One HTTP attempt: when, the status code or the error, how long, the response's start."""

    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    response_snippet: str | None


@dataclass(frozen=True)
class DeliveryRecord:
    """One message to one endpoint; `attempts` counts the current chain, `history` every try."""

    id: int
    message_id: str
    endpoint_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    updated_at: datetime
    history: tuple[AttemptRecord, ...] = ()


_DELIVERY = (
    WebhookDelivery.id,
    WebhookDelivery.message_id,
    WebhookDelivery.endpoint_id,
    WebhookMessage.event_type,
    WebhookDelivery.status,
    WebhookDelivery.attempts,
    WebhookDelivery.next_attempt_at,
    WebhookDelivery.created_at,
    WebhookDelivery.updated_at,
)


def _position(delivery: DeliveryRecord) -> Position:
    return Position(delivery.created_at, delivery.id)


async def list_deliveries(
    conn: AsyncConnection,
    endpoint_id: str,
    limit: int,
    after: Position | None = None,
    status: str | None = None,
    newest_first: bool = False,
) -> Page[DeliveryRecord]:
    """An endpoint's deliveries, oldest first unless `newest_first`, each with all its
    attempts; raises NotFound."""
    if status is not None and status not in DELIVERY_STATUSES:
        raise ValueError(f"unknown delivery status {status!r}; choose from {DELIVERY_STATUSES}")
    stmt = (
        select(*_DELIVERY)
        .join(WebhookMessage, WebhookMessage.id == WebhookDelivery.message_id)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
    )
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    stmt = keyset(stmt, WebhookDelivery.created_at, WebhookDelivery.id, after, limit, newest_first)
    rows = (await conn.execute(stmt)).all()
    if not rows:
        await _require_endpoint(conn, endpoint_id)
    history = await _attempts(conn, [row.id for row in rows])
    deliveries = [DeliveryRecord(**row._asdict(), history=history[row.id]) for row in rows]
    return page_of(deliveries, limit, _position)


async def _attempts(
    conn: AsyncConnection, delivery_ids: list[int]
) -> defaultdict[int, tuple[AttemptRecord, ...]]:
    found: defaultdict[int, tuple[AttemptRecord, ...]] = defaultdict(tuple)
    if not delivery_ids:
        return found
    stmt = (
        select(WebhookAttempt.delivery_id, *_ATTEMPT)
        .where(WebhookAttempt.delivery_id.in_(delivery_ids))
        .order_by(WebhookAttempt.attempted_at, WebhookAttempt.id)
    )
    for row in await conn.execute(stmt):
        found[row.delivery_id] += (_attempt(row),)
    return found


_ATTEMPT = (
    WebhookAttempt.attempted_at,
    WebhookAttempt.status_code,
    WebhookAttempt.latency_ms,
    WebhookAttempt.error,
    WebhookAttempt.response_snippet,
)


def _attempt(row: Row[*tuple[Any, ...]]) -> AttemptRecord:
    values = row._asdict()
    del values["delivery_id"]
    return AttemptRecord(**values)


async def _require_endpoint(conn: AsyncConnection, endpoint_id: str) -> None:
    stmt = select(exists().where(WebhookEndpoint.id == endpoint_id))
    if not (await conn.execute(stmt)).scalar_one():
        raise NotFound("webhook endpoint", endpoint_id)


def _restart(now: datetime) -> Any:
    """A new attempt chain for finished deliveries to endpoints still enabled."""
    enabled = (
        select(WebhookEndpoint.id)
        .where(WebhookEndpoint.disabled_at.is_(None), WebhookEndpoint.deleted_at.is_(None))
        .scalar_subquery()
    )
    return (
        update(WebhookDelivery)
        .where(WebhookDelivery.status != "pending", WebhookDelivery.endpoint_id.in_(enabled))
        .values(status="pending", attempts=0, next_attempt_at=now, updated_at=now)
    )


async def redeliver_message(
    conn: AsyncConnection, message_id: str, now: datetime, endpoint_id: str | None = None
) -> int:
    """Send a message again (same `webhook-id`, earlier attempts kept); how many deliveries.

    Deliveries still pending keep their chain; endpoints created after the message do not get
    it. Raises NotFound for an unknown message.
    """
    stmt = _restart(now).where(WebhookDelivery.message_id == message_id)
    if endpoint_id is not None:
        stmt = stmt.where(WebhookDelivery.endpoint_id == endpoint_id)
    restarted = (await conn.execute(stmt)).rowcount
    if restarted == 0:
        found = await conn.execute(select(exists().where(WebhookMessage.id == message_id)))
        if not found.scalar_one():
            raise NotFound("webhook message", message_id)
    return restarted


async def redeliver_dead(
    conn: AsyncConnection, since: datetime, now: datetime, endpoint_id: str | None = None
) -> int:
    """Send again every delivery that died at or after `since`; how many there were."""
    stmt = _restart(now).where(
        WebhookDelivery.status == "dead", WebhookDelivery.updated_at >= since
    )
    if endpoint_id is not None:
        stmt = stmt.where(WebhookDelivery.endpoint_id == endpoint_id)
    return (await conn.execute(stmt)).rowcount
