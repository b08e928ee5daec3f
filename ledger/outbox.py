"""The webhook outbox: events written in the caller's transaction, one delivery per subscriber.

Only the event types some endpoint subscribes to are written: a feed where most purchases
stamp costs no outbox row per stamp unless someone listens for `stamp.collected`. An endpoint
that subscribes later gets the events written from then on, not the history. A disabled
endpoint still counts as a subscriber: its deliveries are written held (`endpoint_disabled`)
and sent when it is enabled again, if they are young enough then
(`ledger.webhook_endpoints.enable_endpoint`).
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.events import OutboxEvent, build_message, event_type

_SUBSCRIBED = text(
    """
    SELECT DISTINCT jsonb_array_elements_text(event_types) AS event_type
    FROM webhook_endpoints WHERE deleted_at IS NULL
    """
)

# New messages only: a message written before (a replayed batch) does not go to endpoints
# created since, and does not get a second delivery.
_ENQUEUE = text(
    """
    WITH new_messages AS (
        INSERT INTO webhook_messages (id, event_type, body)
        SELECT * FROM json_to_recordset(CAST(:messages AS json))
                      AS m(id text, event_type text, body text)
        ON CONFLICT (id) DO NOTHING
        RETURNING id, event_type
    )
    INSERT INTO webhook_deliveries (message_id, endpoint_id, status)
    SELECT m.id, e.id,
           CASE WHEN e.disabled_at IS NULL THEN 'pending' ELSE 'endpoint_disabled' END
    FROM new_messages m
    JOIN webhook_endpoints e ON e.event_types @> jsonb_build_array(m.event_type)
    WHERE e.deleted_at IS NULL
    """
)


async def subscribed_types(conn: AsyncConnection) -> frozenset[str]:
    """The event types some endpoint (enabled or disabled, not deleted) subscribes to."""
    return frozenset(row.event_type for row in await conn.execute(_SUBSCRIBED))


async def enqueue_events(
    conn: AsyncConnection,
    events: Sequence[OutboxEvent],
    subscribed: frozenset[str] | None = None,
) -> None:
    """Write the events someone subscribes to, and their deliveries, in the caller's transaction.

    `subscribed` is what `subscribed_types` gave earlier in the same transaction, if it ran.
    """
    if not events:
        return
    wanted = subscribed if subscribed is not None else await subscribed_types(conn)
    chosen = [build_message(e) for e in events if event_type(e) in wanted]
    messages = {m.id: m for m in chosen}.values()
    if not messages:
        return
    # One JSON document for the batch: bodies need no escaping as elements of a text array.
    rows = [{"id": m.id, "event_type": m.event_type, "body": m.body} for m in messages]
    await conn.execute(_ENQUEUE, {"messages": orjson.dumps(rows).decode()})
