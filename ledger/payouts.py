"""Payouts: the rewards the relay puts on the payouts topic, each at least once, and what the
payout system reports back about them.

Rows are claimed with `FOR UPDATE SKIP LOCKED` inside the relay's transaction, published,
and marked in the same transaction; several relays never publish the same row at once,
and a crash between the publish and the commit publishes it again (at least once, with the
reward id as the idempotency key that the payout consumer deduplicates on).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.errors import AlreadyExists, NotFound
from ledger.events import CollectionRef, RewardSettled
from ledger.outbox import enqueue_events
from ledger.payout_reports import PayoutReport, PayoutState, apply_report, retried


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
    transaction_id: str | None  # None: a cycle an edit completed with nothing to pay back
    purchase_id: str | None
    cycle: int
    created_at: datetime
    attempt: int = 1


async def claim_payouts(conn: AsyncConnection, limit: int) -> list[Payout]:
    result = await conn.execute(
        text(
            """
            SELECT r.id AS reward_id, r.collection_id, c.member_id, c.program_id, r.type,
                   r.amount, r.currency, r.transaction_id, r.purchase_id, r.cycle, r.created_at,
                   r.payout_attempt AS attempt
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


class PayoutNotRetryable(AlreadyExists):
    """Only a payout reported failed can be retried."""


_LOCKED_REWARD = text(
    """
    SELECT r.id, r.type, r.amount, r.currency, r.cycle, r.payout_status, r.payout_attempt,
           r.payout_reason, r.payout_reported_at,
           c.id AS collection_id, c.program_id, c.member_id, p.qualifying_threshold
    FROM rewards r
    JOIN stamp_collections c ON c.id = r.collection_id
    JOIN programs p ON p.id = c.program_id
    WHERE r.id = :reward_id
    FOR UPDATE OF r
    """
)
_SET_STATE = text(
    """
    UPDATE rewards SET payout_status = :status, payout_attempt = :attempt,
                       payout_reason = :reason, payout_reported_at = :reported_at
    WHERE id = :reward_id
    """
)


async def report_payout(conn: AsyncConnection, reward_id: str, report: PayoutReport) -> bool:
    """Apply the payout system's report; True when it changed the payout.

    A change writes `reward.paid` or `reward.failed` in the same transaction. Raises
    NotFound for an unknown reward and UnknownAttempt for an attempt never published.
    """
    row, state = await _locked(conn, reward_id)
    changed = apply_report(state, report)
    if changed is None:
        return False
    await _set(conn, reward_id, changed)
    event = RewardSettled(
        timestamp=report.reported_at,
        collection=CollectionRef(
            collection_id=row.collection_id,
            program_id=row.program_id,
            member_id=row.member_id,
            qualifying_threshold=row.qualifying_threshold,
        ),
        reward_id=reward_id,
        type=row.type,
        amount=row.amount,
        currency=row.currency,
        cycle=row.cycle,
        paid=changed.status == "paid",
        attempt=changed.attempt,
        reason=changed.reason,
    )
    await enqueue_events(conn, [event])
    return True


async def retry_payout(conn: AsyncConnection, reward_id: str) -> None:
    """Publish a failed payout again as its next attempt, with the same idempotency key.

    Raises NotFound for an unknown reward, PayoutNotRetryable unless it is failed.
    """
    _, state = await _locked(conn, reward_id)
    again = retried(state)
    if again is None:
        raise PayoutNotRetryable(f"reward {reward_id} is {state.status}: only a failed payout")
    await _set(conn, reward_id, again)
    await conn.execute(
        text("UPDATE rewards SET payout_published_at = NULL WHERE id = :reward_id"),
        {"reward_id": reward_id},
    )


async def _locked(conn: AsyncConnection, reward_id: str) -> tuple[Row[Any], PayoutState]:
    row = (await conn.execute(_LOCKED_REWARD, {"reward_id": reward_id})).one_or_none()
    if row is None:
        raise NotFound("reward", reward_id)
    state = PayoutState(
        status=row.payout_status,
        attempt=row.payout_attempt,
        reason=row.payout_reason,
        reported_at=row.payout_reported_at,
    )
    return row, state


async def _set(conn: AsyncConnection, reward_id: str, state: PayoutState) -> None:
    values = {
        "reward_id": reward_id,
        "status": state.status,
        "attempt": state.attempt,
        "reason": state.reason,
        "reported_at": state.reported_at,
    }
    await conn.execute(_SET_STATE, values)
