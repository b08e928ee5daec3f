"""The stamping rules of a collection: pure, synchronous, no I/O, no clock.

A collection's `progress` is the stamps of its current cycle less the stamps it
owes: a void takes one away whether its stamp is in the current cycle (the
counter drops) or in a rewarded one (the next cycle needs one more stamp). The
counter shown, `unredeemed_purchases`, is `max(progress, 0)`; the debt is
`max(-progress, 0)`. So for every collection, at any time:

    rewards * threshold + progress == stamps - voids
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from rules import CardTransaction, FixedReward, ProgramDefinition, RefundReward


@dataclass(frozen=True)
class RewardTerms:
    """What completing a cycle of a program pays."""

    type: str
    amount: int | None
    currency: str | None
    max_amount: int | None

    @classmethod
    def of(cls, program: ProgramDefinition) -> RewardTerms:
        config = program.reward_config
        if isinstance(config, FixedReward):
            return cls("fixed-reward", config.amount, config.currency, None)
        assert isinstance(config, RefundReward)
        return cls("refund", None, config.currency, config.max_amount)

    def pay_for(self, purchase: CardTransaction) -> tuple[int, str]:
        """Amount and currency of the reward that `purchase` triggers by completing a cycle."""
        if self.type == "fixed-reward":
            assert self.amount is not None and self.currency is not None
            return self.amount, self.currency
        # The cap is in the program's currency; a capped program should also restrict
        # `rules.currencies`, and where it does not, the cap still bounds what is paid.
        if self.max_amount is not None:
            return min(purchase.amount, self.max_amount), purchase.currency
        return purchase.amount, purchase.currency


@dataclass(frozen=True)
class NewStamp:
    """A stamp to record; `voided_by` is set when its undo arrived first."""

    collection_id: str
    purchase: CardTransaction
    cycle: int
    voided_by: str | None = None
    unredeemed_after: int = 0


@dataclass(frozen=True)
class Void:
    """A stamp to void because of an undo event; `stamp_id` is None for a stamp of this batch."""

    collection_id: str
    stamp_id: int | None
    purchase_id: str
    undo: CardTransaction
    unredeemed_after: int = 0


@dataclass(frozen=True)
class NewReward:
    """A reward for one completed cycle."""

    collection_id: str
    cycle: int
    type: str
    amount: int
    currency: str
    purchase: CardTransaction


@dataclass
class CollectionState:
    """A collection as the stamping rules see it, changed in place while a batch is applied."""

    id: str
    program_id: str
    member_id: str
    enrolled_at: datetime
    threshold: int
    terms: RewardTerms
    progress: int
    cycle: int
    changed: bool = field(default=False)

    @property
    def unredeemed_purchases(self) -> int:
        return max(self.progress, 0)

    @property
    def owed_stamps(self) -> int:
        return max(-self.progress, 0)

    def accepts(self, purchase: CardTransaction) -> bool:
        """Enrolled only: a purchase stamps a collection enrolled before it happened."""
        return self.enrolled_at <= purchase.occurred_at

    def stamp(self, purchase: CardTransaction) -> tuple[NewStamp, NewReward | None]:
        """Count one stamp; when the cycle completes, reward it and start the next."""
        cycle = self.cycle
        self.progress += 1
        self.changed = True
        reward = None
        if self.progress >= self.threshold:
            amount, currency = self.terms.pay_for(purchase)
            reward = NewReward(self.id, cycle, self.terms.type, amount, currency, purchase)
            self.progress -= self.threshold
            self.cycle += 1
        return NewStamp(self.id, purchase, cycle, None, self.unredeemed_purchases), reward

    def void(self) -> None:
        """Take one stamp away: from the current cycle, or owed by the next one."""
        self.progress -= 1
        self.changed = True
