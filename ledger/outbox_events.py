"""The webhook events a stamped batch announces, built from its plan."""

from __future__ import annotations

from datetime import datetime

from ledger.batch import LedgerView, Plan
from ledger.domain import CollectionState
from ledger.events import (
    CollectionRef,
    OutboxEvent,
    PurchaseRef,
    RewardTriggered,
    StampCollected,
    StampVoided,
)
from rules import CardTransaction


def collection_ref(c: CollectionState) -> CollectionRef:
    return CollectionRef(
        collection_id=c.id,
        program_id=c.program_id,
        member_id=c.member_id,
        qualifying_threshold=c.threshold,
    )


def purchase_ref(tx: CardTransaction) -> PurchaseRef:
    return PurchaseRef(
        transaction_id=tx.id,
        purchase_id=tx.purchase_id,
        amount=tx.amount,
        currency=tx.currency,
        merchant_id=tx.merchant.id,
        merchant_name=tx.merchant.name,
        occurred_at=tx.occurred_at,
    )


def batch_events(
    plan: Plan, view: LedgerView, reward_ids: list[str], now: datetime
) -> list[OutboxEvent]:
    """Every event of the batch; a stamp whose undo came first was never shown, so stays silent."""
    refs = {c.id: collection_ref(c) for c in view.collections.values()}
    voided_here = {v.undo.id for v in plan.voids if v.stamp_id is None}
    events: list[OutboxEvent] = [
        StampCollected(
            timestamp=now,
            collection=refs[s.collection_id],
            purchase=purchase_ref(s.purchase),
            cycle=s.cycle,
            unredeemed_purchases=s.unredeemed_after,
        )
        for s in plan.stamps
        if s.voided_by is None or s.voided_by in voided_here
    ]
    events += [
        StampVoided(
            timestamp=now,
            collection=refs[v.collection_id],
            purchase_id=v.purchase_id,
            voided_by_transaction_id=v.undo.id,
            voided_by_type=str(v.undo.type),
            unredeemed_purchases=v.unredeemed_after,
        )
        for v in plan.voids
    ]
    events += [
        RewardTriggered(
            timestamp=now,
            collection=refs[r.collection_id],
            reward_id=reward_id,
            type=r.type,
            amount=r.amount,
            currency=r.currency,
            cycle=r.cycle,
            purchase=purchase_ref(r.purchase),
        )
        for r, reward_id in zip(plan.rewards, reward_ids, strict=True)
    ]
    return events
