"""The stamping rules of a collection: pure, synchronous, no I/O, no clock.

A collection's `progress` is the stamps of its current cycle less the stamps it owes: a void
takes one away whether its stamp is in the current cycle (the counter drops) or in a rewarded
one (the next cycle needs one more stamp). The counter shown, `unredeemed_purchases`, is
`max(progress, 0)`; the debt is `max(-progress, 0)`. An adjustment by support staff adds or
takes away stamps by the same rules: an addition may complete cycles, a deduction beyond the
current count becomes debt. Each reward consumes the threshold in force when it was
triggered (`stamps_used`), so for every collection, at any time:

    progress == live stamps + adjustments - sum(reward.stamps_used)
    cycle == rewards + 1
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from rules import FixedReward, PartialRefunds, ProgramDefinition, RefundReward

# ISO 4217's code for "no currency is involved": a refund of nothing.
NO_CURRENCY = "XXX"
# The most stamps one adjustment adds or takes away: a bigger fix is several, each explained.
MAX_ADJUSTMENT = 100


class StampStatus(StrEnum):
    """Where a purchase's stamp on a collection stands."""

    LIVE = "live"  # counted
    CAPPED = "capped"  # qualified on a day whose cap was reached; counted if a slot frees up
    VOIDED = "voided"  # its purchase was refunded or reversed


@dataclass(frozen=True, slots=True)
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

    def pay_for(self, amount: int, currency: str) -> tuple[int, str]:
        """Amount and currency of the reward for a cycle completed by a purchase of `amount`."""
        if self.type == "fixed-reward":
            assert self.amount is not None and self.currency is not None
            return self.amount, self.currency
        # A program's rules accept only the cap's currency (checked when it is loaded), so a
        # cap never meets another currency's minor units.
        if self.max_amount is not None and currency == self.currency:
            return min(amount, self.max_amount), currency
        return amount, currency

    def pay_for_nothing(self, currencies: Sequence[str] | None) -> tuple[int, str]:
        """Amount and currency of the reward for a cycle with no purchase left to pay back: a
        fixed reward pays as ever; a refund pays 0, in the program's currency if it names one,
        else in ISO 4217's XXX ("no currency is involved")."""
        if self.type == "fixed-reward":
            assert self.amount is not None and self.currency is not None
            return self.amount, self.currency
        only = currencies[0] if currencies is not None and len(currencies) == 1 else None
        return 0, self.currency or only or NO_CURRENCY


@dataclass(frozen=True, slots=True)
class Tally:
    """A collection's count: the stamps of its current cycle less those it owes, and the cycle."""

    progress: int = 0
    cycle: int = 1

    @property
    def unredeemed_purchases(self) -> int:
        return max(self.progress, 0)

    @property
    def owed_stamps(self) -> int:
        return max(-self.progress, 0)

    def plus_one(self, threshold: int) -> tuple[Tally, int | None]:
        """Count a stamp; when it completes the cycle, the cycle it completed comes back too."""
        progress = self.progress + 1
        if progress >= threshold:
            return Tally(progress - threshold, self.cycle + 1), self.cycle
        return Tally(progress, self.cycle), None

    def minus_one(self) -> Tally:
        """Take a stamp away: from the current cycle, or owed by the next one."""
        return Tally(self.progress - 1, self.cycle)

    def adjusted(self, delta: int, threshold: int) -> tuple[Tally, list[int]]:
        """Add `delta` stamps (or take them away), rewarding every cycle an addition completes."""
        tally = Tally(self.progress + delta, self.cycle)
        return tally.settle(threshold) if delta > 0 else (tally, [])

    def settle(self, threshold: int) -> tuple[Tally, list[int]]:
        """Reward every cycle the count completes under a (lowered) threshold, carrying the rest."""
        tally, completed = self, []
        while tally.progress >= threshold:
            completed.append(tally.cycle)
            tally = Tally(tally.progress - threshold, tally.cycle + 1)
        return tally, completed


@dataclass(frozen=True, slots=True)
class UndoFact:
    """A refund or reversal as the stamping rules need it."""

    id: str
    original_id: str
    member_id: str
    type: str
    amount: int | None  # None for records that predate amounts: a full undo
    currency: str | None


def voiding_undo(
    policy: PartialRefunds, amount: int, currency: str, undos: Sequence[UndoFact]
) -> str | None:
    """The undo that voids a stamp of `amount`, given every undo naming its purchase, or None.

    Any undo voids under the default policy. Under `keep`, a partial refund leaves the stamp;
    a reversal, a refund of the whole amount (or in another currency, which cannot be
    compared) voids it, and so do partial refunds once they add up to the amount. Of several,
    the first by id that voids alone is named, else the last of those that add up.
    """
    if not undos:
        return None
    ordered = sorted(undos, key=lambda u: u.id)
    if policy is PartialRefunds.VOID:
        return ordered[0].id
    for undo in ordered:
        if undo.type != "refund" or undo.amount is None or undo.currency != currency:
            return undo.id
        if undo.amount >= amount:
            return undo.id
    if sum(u.amount or 0 for u in ordered) >= amount:
        return ordered[-1].id
    return None


def refunded_part(currency: str, undos: Sequence[UndoFact]) -> int:
    """What the partial refunds of a purchase in `currency` gave back: a stamp kept under
    `keep` is worth its amount less this."""
    return sum(
        u.amount
        for u in undos
        if u.type == "refund" and u.amount is not None and u.currency == currency
    )


def local_day(program: ProgramDefinition, moment: datetime) -> date:
    """The day of `moment` on the program's clock, for its daily cap."""
    return moment.astimezone(ZoneInfo(program.rules.timezone)).date()


def reward_id(collection_id: str, cycle: int) -> str:
    """The reward of one cycle of one collection: the same cycle always gets the same id."""
    digest = hashlib.sha256(f"{collection_id}\x00{cycle}".encode()).digest()
    return "rw_" + base64.b32encode(digest[:15]).decode()
