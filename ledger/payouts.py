"""Payouts: the rewards the relay puts on the payouts topic, each at least once.

Rows are claimed with `FOR UPDATE SKIP LOCKED` inside the relay's transaction, published,
and marked in the same transaction; several relays never publish the same row at once,
and a crash between the publish and the commit publishes it again (at least once, with the
reward id as the idempotency key that the payout consumer deduplicates on).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class Payout:
    """A reward to pay, as the payouts topic carries it."""

    reward_id: str
    collection_id: str
    member_id: str
    program_id: str
    type: str
    amount: int
    currency: str
    transaction_id: str
    purchase_id: str
    cycle: int
    created_at: datetime


async def claim_payouts(conn: AsyncConnection, limit: int) -> list[Payout]:
    result = await conn.execute(
        text(
            """
            SELECT r.id AS reward_id, r.collection_id, c.member_id, c.program_id, r.type,
                   r.amount, r.currency, r.transaction_id, r.purchase_id, r.cycle, r.created_at
            FROM rewards r JOIN stamp_collections c ON c.id = r.collection_id
            WHERE r.payout_published_at IS NULL
            ORDER BY r.created_at, r.id
            LIMIT :limit
            FOR UPDATE OF r SKIP LOCKED
            """
        ),
        {"limit": limit},
    )
    return [Payout(**row._mapping) for row in result]


async def mark_payouts_published(conn: AsyncConnection, ids: list[str], now: datetime) -> None:
    await conn.execute(
        text("UPDATE rewards SET payout_published_at = :now WHERE id = ANY(CAST(:ids AS text[]))"),
        {"now": now, "ids": ids},
    )
