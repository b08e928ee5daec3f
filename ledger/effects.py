"""The rewards and outbox events of a plan, built from the rows the ledger holds: pure."""

from __future__ import annotations

from datetime import datetime

from ledger.domain import RewardTerms, reward_id
from ledger.events import CollectionRef, PurchaseRef, RewardTriggered
from ledger.model import CollectionView, NewReward, StampRow
from rules import ProgramDefinition


def reward_for(
    program: ProgramDefinition,
    collection_id: str,
    stamp: StampRow | None,
    cycle: int,
    refunded: int = 0,
) -> NewReward:
    """The reward of `cycle`, paid for the purchase of `stamp`, on the program's terms.

    A refund pays back the purchase less `refunded` (partial refunds it kept the stamp
    through). With no `stamp` (an edit completed the cycle with nothing left to pay back) a
    refund pays 0 and a fixed reward its amount, naming no purchase.
    """
    terms = RewardTerms.of(program)
    if stamp is None:
        amount, currency = terms.pay_for_nothing(program.rules.currencies)
    else:
        amount, currency = terms.pay_for(stamp.amount - refunded, stamp.currency)
    return NewReward(
        id=reward_id(collection_id, cycle),
        collection_id=collection_id,
        cycle=cycle,
        type=terms.type,
        amount=amount,
        currency=currency,
        transaction_id=None if stamp is None else stamp.transaction_id,
        purchase_id=None if stamp is None else stamp.purchase_id,
        stamps_used=program.qualifying_threshold,
        program_version=program.version,
    )


def collection_ref(collection: CollectionView, program: ProgramDefinition) -> CollectionRef:
    return CollectionRef(
        collection_id=collection.id,
        program_id=collection.program_id,
        member_id=collection.member_id,
        qualifying_threshold=program.qualifying_threshold,
    )


def purchase_ref(stamp: StampRow) -> PurchaseRef:
    return PurchaseRef(
        transaction_id=stamp.transaction_id,
        purchase_id=stamp.purchase_id,
        amount=stamp.amount,
        currency=stamp.currency,
        merchant_id=stamp.merchant_id,
        merchant_name=stamp.merchant_name,
        occurred_at=stamp.occurred_at,
    )


def reward_triggered(
    reward: NewReward,
    collection: CollectionView,
    program: ProgramDefinition,
    stamp: StampRow | None,
    now: datetime,
) -> RewardTriggered:
    return RewardTriggered(
        timestamp=now,
        collection=collection_ref(collection, program),
        reward_id=reward.id,
        type=reward.type,
        amount=reward.amount,
        currency=reward.currency,
        cycle=reward.cycle,
        purchase=None if stamp is None else purchase_ref(stamp),
    )
