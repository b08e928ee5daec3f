"""Cycles completed outside a purchase: a lowered threshold, or an adjustment by support staff.

A lowered threshold pays its cycles from the collection's payable purchases: the live stamps
of its current cycle that no reward of the collection names. Each purchase is paid back once:
a cycle left with none pays a refund of 0 (a fixed reward its amount), naming no purchase
(docs/stamping.md, "Cycles completed by an edit"). An adjustment has no purchase of its own,
so its cycles are paid for the collection's latest live stamp; an addition that would
complete a cycle of a collection without a live stamp is refused.

A refund program's reward pays back the purchase it names, so a cycle must never be paid
for a purchase that already paid one: a refund program takes no added stamps at all (a
missed purchase is sent as the transaction it was, and its reward refunds it), only
deductions. Its counts then hold purchases only, and a lowered threshold pays each cycle
for a purchase of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from ledger.domain import MAX_ADJUSTMENT
from ledger.effects import collection_ref, reward_for, reward_triggered
from ledger.errors import AdjustmentRefused
from ledger.events import EVENT_TYPES, OutboxEvent, StampAdjusted
from ledger.model import CollectionView, NewReward, StampRow
from rules import ProgramDefinition, RefundReward

MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class Settled:
    """A collection after a lowered threshold or an adjustment: its count, the rewards due."""

    collection: CollectionView
    rewards: tuple[NewReward, ...]
    events: tuple[OutboxEvent, ...]


@dataclass(frozen=True)
class Payable:
    """A live stamp of a collection's current cycle that no reward of it names, with what
    partial refunds kept under `keep` gave back of its purchase."""

    stamp: StampRow
    refunded: int = 0


def settle(
    program: ProgramDefinition,
    collection: CollectionView,
    payable: Sequence[Payable],
    now: datetime,
) -> Settled:
    """Reward every cycle the count completes under the program's (lowered) threshold.

    The payable purchases, by `occurred_at` then purchase id, the last `unredeemed_purchases`
    of them: cycle k is paid for the one at position k * threshold when there is one, else
    for the latest not paid by an earlier cycle here (the rest of the count was added), else
    for none. What is left over is carried into the next cycle.
    """
    threshold = program.qualifying_threshold
    tally, cycles = collection.tally.settle(threshold)
    if not cycles:
        return Settled(collection, (), ())
    ordered = sorted(payable, key=lambda p: (p.stamp.occurred_at, p.stamp.purchase_id))
    current = ordered[-collection.tally.unredeemed_purchases :]
    settled = replace(collection, tally=tally)
    rewards, events, paid = [], [], set[str]()
    for n, cycle in enumerate(cycles, start=1):
        pick = _pick(current, n * threshold, paid)
        stamp = None if pick is None else pick.stamp
        reward = reward_for(program, collection.id, stamp, cycle, pick.refunded if pick else 0)
        rewards.append(reward)
        events.append(reward_triggered(reward, settled, program, stamp, now))
    return Settled(settled, tuple(rewards), tuple(events))


def _pick(current: Sequence[Payable], position: int, paid: set[str]) -> Payable | None:
    """The purchase a cycle of a settlement pays for; `paid` collects those taken."""
    if position <= len(current):
        pick: Payable | None = current[position - 1]
    else:
        pick = next((p for p in reversed(current) if p.stamp.purchase_id not in paid), None)
    if pick is not None:
        paid.add(pick.stamp.purchase_id)
    return pick


@dataclass(frozen=True)
class Adjustment:
    """Stamps added (`delta` > 0) or taken away by support staff, with why."""

    id: str
    collection_id: str
    delta: int
    reason: str


def check_adjustment(delta: int, reason: str) -> None:
    """Raise ValueError for a delta or reason out of bounds."""
    if delta == 0 or abs(delta) > MAX_ADJUSTMENT:
        bound = MAX_ADJUSTMENT
        raise ValueError(f"delta must be a non-zero integer from -{bound} to {bound}")
    if not 1 <= len(reason) <= MAX_REASON_CHARS or not reason.strip():
        raise ValueError(f"reason must be 1 to {MAX_REASON_CHARS} characters, not blank")


def adjust(
    program: ProgramDefinition,
    collection: CollectionView,
    adjustment: Adjustment,
    latest_live: StampRow | None,
    now: datetime,
    announce: frozenset[str] = frozenset(EVENT_TYPES),
) -> Settled:
    """Add or take away stamps by the stamping rules: an addition rewards each cycle it
    completes (for `latest_live`, the collection's latest live stamp); a deduction beyond the
    current count becomes stamps owed by the next cycle, never a negative count nor a reward
    taken back. Raises AdjustmentRefused for an addition to a refund program, and for one that
    completes a cycle with no live stamp to pay for."""
    check_adjustment(adjustment.delta, adjustment.reason)
    if adjustment.delta > 0 and isinstance(program.reward_config, RefundReward):
        raise AdjustmentRefused(
            "a refund program's reward pays back a purchase, so it takes no added stamps: send "
            "the missed purchase as a transaction instead; deductions are accepted"
        )
    tally, cycles = collection.tally.adjusted(adjustment.delta, program.qualifying_threshold)
    if cycles and latest_live is None:
        raise AdjustmentRefused(
            "this addition would complete a cycle, and the collection has no counted purchase "
            "for its reward to pay for; add fewer stamps"
        )
    adjusted = replace(collection, tally=tally)
    events: list[OutboxEvent] = []
    if "stamp.adjusted" in announce:
        events.append(
            StampAdjusted(
                timestamp=now,
                collection=collection_ref(adjusted, program),
                adjustment_id=adjustment.id,
                delta=adjustment.delta,
                reason=adjustment.reason,
                cycle=tally.cycle,
                unredeemed_purchases=tally.unredeemed_purchases,
                owed_stamps=tally.owed_stamps,
            )
        )
    rewards = []
    for cycle in cycles:
        assert latest_live is not None
        reward = reward_for(program, collection.id, latest_live, cycle)
        rewards.append(reward)
        if "reward.triggered" in announce:
            events.append(reward_triggered(reward, adjusted, program, latest_live, now))
    return Settled(adjusted, tuple(rewards), tuple(events))
