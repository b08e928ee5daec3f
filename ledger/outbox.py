"""The webhook outbox: events written in the caller's transaction, one delivery per subscriber."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.events import OutboxEvent, build_message

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
    INSERT INTO webhook_deliveries (message_id, endpoint_id)
    SELECT m.id, e.id
    FROM new_messages m
    JOIN webhook_endpoints e ON e.event_types @> jsonb_build_array(m.event_type)
    WHERE e.disabled_at IS NULL AND e.deleted_at IS NULL
    """
)


async def enqueue_events(conn: AsyncConnection, events: Sequence[OutboxEvent]) -> None:
    """Write the events and their deliveries in the caller's transaction: one statement in all."""
    messages = {m.id: m for m in map(build_message, events)}.values()
    if not messages:
        return
    # One JSON document for the batch: bodies need no escaping as elements of a text array.
    rows = [{"id": m.id, "event_type": m.event_type, "body": m.body} for m in messages]
    await conn.execute(_ENQUEUE, {"messages": orjson.dumps(rows).decode()})
