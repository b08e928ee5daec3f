"""A second reference model of stamping, written from docs/stamping.md and the product contract.

It replays operations one at a time, in the order they arrive, over plain dictionaries and
lists: card transaction events (auth, clearing, refund, reversal), adjustments, program edits,
unenrollments, enrollments and erasures. It shares nothing with the ledger but the `rules`
package, which says whether a transaction meets a program's conditions, so that where the
contract and the code disagree, the two answers differ.

The state it exposes, per collection id, is what the ledger's rows hold:

- ``counter``: (unredeemed_purchases, owed_stamps, cycle);
- ``stamps``: {purchase_id: (status, transaction_id, void_transaction_id)};
- ``rewards``: {cycle: (amount, currency, transaction_id or None)}.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from rules import (
    CardTransaction,
    FixedReward,
    PartialRefunds,
    ProgramDefinition,
    TransactionType,
    qualifies,
)

LIVE, CAPPED, VOIDED = "live", "capped", "voided"
UNDO_TYPES = (TransactionType.REFUND, TransactionType.REVERSAL)


class EnrollmentLike(Protocol):
    """A member's enrollment in a program: the ledger's, or any object with these fields."""

    @property
    def collection_id(self) -> str: ...

    @property
    def program_id(self) -> str: ...

    @property
    def member_id(self) -> str: ...

    @property
    def enrolled_at(self) -> datetime: ...


@dataclass
class Stamp:
    """A purchase's stamp in one collection, and the event that made it."""

    purchase_id: str
    transaction_id: str
    amount: int
    currency: str
    occurred_at: datetime
    status: str
    void_transaction_id: str | None = None
    # The cycle that was current when the stamp was counted: made live, or promoted.
    cycle: int | None = None
    # When it was counted, in the collection's own order: an addition names the last one.
    counted: int = 0


@dataclass
class Reward:
    amount: int
    currency: str | None
    transaction_id: str | None
    purchase_id: str | None


@dataclass
class Collection:
    id: str
    program_id: str
    member_id: str
    enrolled_at: datetime
    enrolled: bool = True
    # live stamps + additions - deductions - stamps used by rewards; shown as two counters.
    progress: int = 0
    cycle: int = 1
    stamps: dict[str, Stamp] = field(default_factory=dict)
    rewards: dict[int, Reward] = field(default_factory=dict)
    adjustments: dict[str, int] = field(default_factory=dict)
    counted: int = 0


@dataclass
class Purchase:
    """The remembered events of one member's purchase, and when it happened."""

    events: dict[str, CardTransaction] = field(default_factory=dict)
    happened_at: datetime | None = None


class ContractModel:
    """The contract's answer for a history, replayed one operation at a time."""

    def __init__(
        self, programs: Mapping[str, ProgramDefinition], enrollments: Iterable[EnrollmentLike]
    ) -> None:
        self.programs: dict[str, ProgramDefinition] = dict(programs)
        self.collections: dict[str, Collection] = {}
        # Every id is the member's: purchases, events and undos are keyed by (member, id).
        self.purchases: dict[tuple[str, str], Purchase] = {}
        # When each remembered event and each undo arrived, in one order: a repeat is a key
        # already here.
        self.arrived: dict[tuple[str, str], int] = {}
        self.undos: dict[str, list[CardTransaction]] = {}
        for enrollment in enrollments:
            self.enroll(enrollment)

    # Operations

    def apply(self, events: Iterable[CardTransaction]) -> ContractModel:
        for tx in events:
            if tx.type in UNDO_TYPES:
                self._undo(tx)
            else:
                self._purchase_event(tx)
        return self

    def adjust(self, collection_id: str, delta: int, key: str) -> bool:
        """Add or take away stamps; whether the adjustment was made (not refused nor repeated)."""
        c = self.collections[collection_id]
        if key in c.adjustments:
            # The same key again answers the first adjustment, or is refused: nothing new.
            return False
        program = self.programs[c.program_id]
        threshold = program.qualifying_threshold
        if delta > 0:
            if not isinstance(program.reward_config, FixedReward):
                return False  # a refund program takes no additions
            latest = self._latest_counted(c)
            if c.progress + delta >= threshold and latest is None:
                return False  # a completed cycle would have no purchase to name
        c.adjustments[key] = delta
        c.progress += delta
        while c.progress >= threshold:
            self._reward(c, self._latest_counted(c))
        return True

    def apply_program(self, definition: ProgramDefinition, now: datetime | None = None) -> bool:
        """A new definition, from now on; an older or equal version changes nothing."""
        held = self.programs.get(definition.id)
        if held is not None and definition.version <= held.version:
            return False
        self.programs[definition.id] = definition
        for c in self._collections_of_program(definition.id):
            self._settle(c)
        return True

    def unenroll(self, collection_id: str, now: datetime | None = None) -> None:
        self.collections[collection_id].enrolled = False

    def enroll(self, enrollment: EnrollmentLike) -> None:
        self.collections[enrollment.collection_id] = Collection(
            enrollment.collection_id,
            enrollment.program_id,
            enrollment.member_id,
            enrollment.enrolled_at,
        )

    def erase(self, member_id: str, now: datetime | None = None) -> None:
        # A pseudonym renames the member consistently, so later events still find their
        # purchases: only the collections stop being live.
        for c in self.collections.values():
            if c.member_id == member_id:
                c.enrolled = False

    def state(self) -> dict[str, Any]:
        return {
            c.id: {
                "counter": (max(c.progress, 0), max(-c.progress, 0), c.cycle),
                "stamps": {
                    p: (s.status, s.transaction_id, s.void_transaction_id)
                    for p, s in c.stamps.items()
                },
                "rewards": {
                    cycle: (r.amount, r.currency, r.transaction_id)
                    for cycle, r in c.rewards.items()
                },
            }
            for c in self.collections.values()
        }

    # Events

    def _purchase_event(self, tx: CardTransaction) -> None:
        member, key = tx.member_id, (tx.member_id, tx.id)
        if key in self.arrived:
            return  # a repeat
        if not self._remembered(tx):
            return  # forgotten: no effect and no row, so a later copy is judged afresh
        self.arrived[key] = len(self.arrived)
        purchase = self.purchases.setdefault((member, tx.purchase_id), Purchase())
        purchase.events[tx.id] = tx
        if purchase.happened_at is None or tx.occurred_at < purchase.happened_at:
            purchase.happened_at = tx.occurred_at
        happened_at = purchase.happened_at
        mine = self._collections_of_member(member)
        for c in mine:
            stamp = c.stamps.get(tx.purchase_id)
            if stamp is not None and stamp.status != VOIDED and c.enrolled_at > happened_at:
                self._void(c, stamp, tx.id)  # withdrawn: the purchase predates the enrollment
        self._judge(member, tx.purchase_id)
        for c in mine:
            if tx.purchase_id in c.stamps or not c.enrolled or c.enrolled_at > happened_at:
                continue
            if qualifies(self.programs[c.program_id], tx):
                self._stamp(c, tx)

    def _undo(self, tx: CardTransaction) -> None:
        key = (tx.member_id, tx.id)
        if key in self.arrived:
            return
        self.arrived[key] = len(self.arrived)
        self.undos.setdefault(tx.member_id, []).append(tx)
        for (member, purchase_id), purchase in self.purchases.items():
            if member == tx.member_id and self._names(tx, purchase_id, purchase):
                self._judge(member, purchase_id, tx.id)

    def _remembered(self, tx: CardTransaction) -> bool:
        """Whether the event meets every condition of some active program but those that may
        differ between the events of one purchase: amount, time, and the type it stamps on."""
        for program in self.programs.values():
            relaxed_rules = program.rules.model_copy(
                update={
                    "min_amount": None,
                    "max_amount": None,
                    "days_of_week": None,
                    "hours_of_day": None,
                    "stamp_on": tx.type,
                }
            )
            relaxed = program.model_copy(
                update={"rules": relaxed_rules, "active_from": None, "active_until": None}
            )
            if qualifies(relaxed, tx):
                return True
        return False

    @staticmethod
    def _names(undo: CardTransaction, purchase_id: str, purchase: Purchase) -> bool:
        return undo.original_id == purchase_id or undo.original_id in purchase.events

    # Stamps

    def _stamp(self, c: Collection, tx: CardTransaction) -> None:
        stamp = Stamp(tx.purchase_id, tx.id, tx.amount, tx.currency, tx.occurred_at, CAPPED)
        c.stamps[tx.purchase_id] = stamp
        voider = self._voider(c, stamp)
        if voider is not None:
            # An undo known first: the purchase stamps already voided, never counted.
            stamp.status, stamp.void_transaction_id = VOIDED, voider
            return
        cap = self.programs[c.program_id].rules.daily_cap_per_member
        if cap is not None and self._live_on_day(c, self._day(c, stamp)) >= cap:
            return  # kept capped: not counted
        stamp.status = LIVE
        self._count(c, stamp)

    def _judge(self, member: str, purchase_id: str, arrived: str | None = None) -> None:
        """Judge the purchase's stamps against its known undos, under today's policy; a stamp
        an arriving undo tips into a void names that undo."""
        for c in self._collections_of_member(member):
            stamp = c.stamps.get(purchase_id)
            if stamp is None or stamp.status == VOIDED:
                continue
            voider = self._voider(c, stamp)
            if voider is not None:
                self._void(c, stamp, arrived or voider)

    def _voider(self, c: Collection, stamp: Stamp) -> str | None:
        """The id of the undo that voids the stamp, if any, of those known: by id, the first
        that voids on its own, else the last of the partial refunds that add up."""
        keep = self.programs[c.program_id].rules.partial_refunds == PartialRefunds.KEEP
        purchase = self.purchases.get((c.member_id, stamp.purchase_id), Purchase())
        naming = sorted(
            (
                u
                for u in self.undos.get(c.member_id, [])
                if self._names(u, stamp.purchase_id, purchase)
            ),
            key=lambda u: u.id,
        )
        for undo in naming:
            whole = undo.currency != stamp.currency or undo.amount >= stamp.amount
            if undo.type == TransactionType.REVERSAL or whole or not keep:
                return undo.id
        if naming and sum(u.amount for u in naming) >= stamp.amount:
            return naming[-1].id
        return None

    def _refunded(self, c: Collection, stamp: Stamp) -> int:
        """The partial refunds of a kept purchase known now, in its own currency."""
        purchase = self.purchases.get((c.member_id, stamp.purchase_id), Purchase())
        return sum(
            u.amount
            for u in self.undos.get(c.member_id, [])
            if u.type == TransactionType.REFUND
            and u.currency == stamp.currency
            and self._names(u, stamp.purchase_id, purchase)
        )

    def _void(self, c: Collection, stamp: Stamp, by: str) -> None:
        was_live = stamp.status == LIVE
        stamp.status, stamp.void_transaction_id = VOIDED, by
        if was_live:
            # In the current cycle this lowers the count; in a rewarded one it leaves a debt.
            c.progress -= 1
            self._promote(c, self._day(c, stamp))

    def _promote(self, c: Collection, day: date) -> None:
        """Fill the day's free slots with its earliest capped purchases, one by one."""
        cap = self.programs[c.program_id].rules.daily_cap_per_member
        if not c.enrolled or cap is None:
            return  # a removed cap promotes nothing: its capped stamps stay for the record
        waiting = sorted(
            (s for s in c.stamps.values() if s.status == CAPPED and self._day(c, s) == day),
            key=lambda s: (s.occurred_at, s.purchase_id),
        )
        for stamp in waiting:
            if self._live_on_day(c, day) >= cap:
                return
            stamp.status = LIVE
            self._count(c, stamp)

    def _day(self, c: Collection, stamp: Stamp) -> date:
        zone = ZoneInfo(self.programs[c.program_id].rules.timezone)
        return stamp.occurred_at.astimezone(zone).date()

    def _live_on_day(self, c: Collection, day: date) -> int:
        return sum(1 for s in c.stamps.values() if s.status == LIVE and self._day(c, s) == day)

    # Cycles and rewards

    def _count(self, c: Collection, stamp: Stamp) -> None:
        c.counted += 1
        stamp.cycle, stamp.counted = c.cycle, c.counted
        c.progress += 1
        while c.progress >= self.programs[c.program_id].qualifying_threshold:
            self._reward(c, stamp)

    def _reward(self, c: Collection, stamp: Stamp | None) -> None:
        """Complete the current cycle, paid for `stamp`'s purchase (None: for no purchase)."""
        program = self.programs[c.program_id]
        config = program.reward_config
        currency: str | None
        if isinstance(config, FixedReward):
            amount, currency = config.amount, config.currency
        elif stamp is None:
            # Everything it could pay back was paid back already.
            amount, currency = 0, config.currency or _single(program.rules.currencies)
        else:
            amount = max(stamp.amount - self._refunded(c, stamp), 0)
            if config.max_amount is not None and stamp.currency == config.currency:
                amount = min(amount, config.max_amount)
            currency = stamp.currency
        c.rewards[c.cycle] = Reward(
            amount,
            currency,
            None if stamp is None else stamp.transaction_id,
            None if stamp is None else stamp.purchase_id,
        )
        c.progress -= program.qualifying_threshold
        c.cycle += 1

    def _settle(self, c: Collection) -> None:
        """Reward the cycles an edit completed, from the collection's payable purchases."""
        threshold = self.programs[c.program_id].qualifying_threshold
        if c.progress < threshold:
            return
        named = {r.purchase_id for r in c.rewards.values() if r.purchase_id is not None}
        payable = sorted(
            (
                s
                for s in c.stamps.values()
                if s.status == LIVE and s.cycle == c.cycle and s.purchase_id not in named
            ),
            key=lambda s: (s.occurred_at, s.purchase_id),
        )
        payable = payable[-c.progress :]
        paid: set[str] = set()
        k = 1
        while c.progress >= threshold:
            if len(payable) >= k * threshold:
                chosen: Stamp | None = payable[k * threshold - 1]
            else:
                # The rest of the count came from added stamps: the latest not yet paid for.
                chosen = next((s for s in reversed(payable) if s.purchase_id not in paid), None)
            if chosen is not None:
                paid.add(chosen.purchase_id)
            self._reward(c, chosen)
            k += 1

    def _latest_counted(self, c: Collection) -> Stamp | None:
        # Of the live stamps, the one made last: the collection's stamps in the order made.
        live = [s for s in c.stamps.values() if s.status == LIVE]
        return live[-1] if live else None

    # Lookups

    def _collections_of_member(self, member: str) -> list[Collection]:
        return sorted(
            (c for c in self.collections.values() if c.member_id == member), key=lambda c: c.id
        )

    def _collections_of_program(self, program_id: str) -> list[Collection]:
        return sorted(
            (c for c in self.collections.values() if c.program_id == program_id),
            key=lambda c: c.id,
        )


def _single(currencies: tuple[str, ...] | None) -> str:
    """The program's currency if it accepts only one, else ISO 4217's "no currency"."""
    return currencies[0] if currencies is not None and len(currencies) == 1 else "XXX"
