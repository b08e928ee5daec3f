"""The stamping rules as a reference model: short, slow and plainly right.

It replays the events one at a time in arrival order, with nothing but dictionaries and
loops, and says what the ledger must hold afterwards. The planner (`ledger.planner`) must
reach the same state whatever the batching, duplicates and redeliveries. Reading guide:

- ids are the member's: a repeated (member, id) changes nothing; a purchase event that
  belongs to no active program (meets none but for the amount, the time and the type) is
  forgotten;
- a purchase is the remembered events of one member sharing a purchase_id; it happens at
  its earliest event; an undo names its purchase_id or the id of any of its events;
- a program's stamp is made by an event of its type that meets every condition, if the
  collection is live and was enrolled at or before the purchase happened; it is born voided
  when an undo already voids it, capped when its day is full;
- an event showing the purchase happened before a collection's enrollment withdraws the
  stamp there (a void by that event);
- an undo voids every stamp of the purchases it names (partial refunds per program policy);
  a voided live stamp frees its day's slots for the earliest capped stamps of that day, on a
  live collection, while the day is below the cap;
- a live stamp counts one; a cycle completed pays its reward at once, a refund less the
  partial refunds known; a void takes one away, from the current cycle or owed by the next;
- an adjustment adds or takes away stamps: each cycle an addition completes pays its reward
  at once, for the latest live stamp (an addition that would complete one with no live
  stamp, or to a refund program, is refused and changes nothing); a deduction takes away from
  the current cycle or is owed by the next; a repeated idempotency key changes nothing;
- a program edit applies from then on; a lowered threshold pays each completed cycle for a
  payable purchase (live, of the current cycle, named by no reward), or for none;
- unenrolling ends a collection; erasing a member ends all of theirs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from ledger.memory import Enrollment
from rules import (
    CardTransaction,
    FixedReward,
    PartialRefunds,
    ProgramDefinition,
    TransactionType,
    qualifies,
)

Paid = tuple[int, str, str | None]  # amount, currency, the purchase event it names


@dataclass
class Stamp:
    purchase_id: str
    transaction_id: str
    amount: int
    currency: str
    occurred_at: datetime
    status: str = "capped"
    voided_by: str | None = None
    cycle: int = 0


@dataclass
class Collection:
    id: str
    program_id: str
    member: str
    enrolled_at: datetime
    live: bool = True
    progress: int = 0
    cycle: int = 1
    stamps: dict[str, Stamp] = field(default_factory=dict)
    rewards: dict[int, Paid] = field(default_factory=dict)


def belongs(program: ProgramDefinition, tx: CardTransaction) -> bool:
    """Whether the event meets every condition of the program but the amount, the time and
    the type: the events of one purchase may differ in those."""
    rules = program.rules.model_copy(
        update={
            "min_amount": None,
            "max_amount": None,
            "days_of_week": None,
            "hours_of_day": None,
        }
    )
    relaxed = program.model_copy(update={"rules": rules, "active_from": None, "active_until": None})
    as_stamping_type = tx.model_copy(update={"type": TransactionType(program.rules.stamp_on)})
    return qualifies(relaxed, as_stamping_type)


def would_qualify(program: ProgramDefinition, tx: CardTransaction) -> bool:
    """Whether the event meets every condition of the program but the type it stamps on."""
    as_stamping_type = tx.model_copy(update={"type": TransactionType(program.rules.stamp_on)})
    return qualifies(program, as_stamping_type)


class Model:
    def __init__(
        self, programs: Mapping[str, ProgramDefinition], enrollments: Iterable[Enrollment]
    ):
        self.programs = dict(programs)
        self.collections: list[Collection] = []
        for e in enrollments:
            self.enroll(e)
        self.seen: set[tuple[str, str]] = set()
        self.events_of: dict[tuple[str, str], list[CardTransaction]] = {}
        self.undos: list[CardTransaction] = []
        self.adjustment_keys: set[tuple[str, str]] = set()

    # --- what happens ---------------------------------------------------------------------

    def apply(self, events: Iterable[CardTransaction]) -> Model:
        for tx in events:
            if (tx.member_id, tx.id) not in self.seen:
                self.purchase(tx) if tx.is_purchase else self.undo(tx)
        return self

    def enroll(self, e: Enrollment) -> None:
        self.collections.append(
            Collection(e.collection_id, e.program_id, e.member_id, e.enrolled_at)
        )

    def unenroll(self, collection_id: str, now: datetime) -> None:
        self.collection(collection_id).live = False

    def erase(self, member: str, now: datetime) -> None:
        for c in self.collections:
            if c.member == member:
                c.live = False

    def purchase(self, tx: CardTransaction) -> None:
        active = [p for p in self.programs.values() if p.status == "active"]
        if not any(belongs(p, tx) for p in active):
            return
        member, purchase = tx.member_id, tx.purchase_id
        self.seen.add((member, tx.id))
        self.events_of.setdefault((member, purchase), []).append(tx)
        happened = self.happened(member, purchase)
        for c in self.collections:
            stamp = c.stamps.get(purchase)
            withdrawn = c.member == member and stamp and c.enrolled_at > happened
            if withdrawn and stamp.status != "voided":
                self.void(c, stamp, tx.id)
        self.rejudge(member, purchase, trigger=None)
        for c in self.collections:
            program = self.programs[c.program_id]
            if c.member != member or not c.live or program.rules.stamp_on != tx.type:
                continue
            if not would_qualify(program, tx) or c.enrolled_at > happened:
                continue
            if purchase in c.stamps:
                continue
            stamp = Stamp(purchase, tx.id, tx.amount, tx.currency, tx.occurred_at)
            c.stamps[purchase] = stamp
            voider = self.voider(c, stamp)
            if voider is not None:
                stamp.status, stamp.voided_by = "voided", voider
            elif self.room_on(c, self.day(c, stamp)):
                self.count(c, stamp)

    def undo(self, tx: CardTransaction) -> None:
        self.seen.add((tx.member_id, tx.id))
        self.undos.append(tx)
        named = {tx.original_id}
        for (member, purchase), events in self.events_of.items():
            if member == tx.member_id and tx.original_id in {e.id for e in events}:
                named.add(purchase)
        for purchase in sorted(p for p in named if p is not None):
            self.rejudge(tx.member_id, purchase, trigger=tx)

    def adjust(self, collection_id: str, delta: int, key: str) -> bool:
        """Add or take away stamps; whether the adjustment was made."""
        c = self.collection(collection_id)
        program = self.programs[c.program_id]
        if (collection_id, key) in self.adjustment_keys:
            return False
        live = [s for s in c.stamps.values() if s.status == "live"]
        if delta > 0 and not isinstance(program.reward_config, FixedReward):
            return False  # a refund program's rewards pay back purchases: none is added
        if delta > 0 and c.progress + delta >= program.qualifying_threshold and not live:
            return False
        self.adjustment_keys.add((collection_id, key))
        c.progress += delta
        while c.progress >= program.qualifying_threshold:
            self.reward(c, live[-1])
        return True

    def apply_program(self, definition: ProgramDefinition, now: datetime) -> bool:
        before = self.programs.get(definition.id)
        if before is not None and before.version >= definition.version:
            return False
        self.programs[definition.id] = definition
        if before is None or definition.qualifying_threshold >= before.qualifying_threshold:
            return True
        for c in self.collections:
            if c.program_id == definition.id:
                self.settle(c, definition.qualifying_threshold)
        return True

    # --- rules ----------------------------------------------------------------------------

    def happened(self, member: str, purchase: str) -> datetime:
        return min(e.occurred_at for e in self.events_of[(member, purchase)])

    def names(self, member: str, purchase_id: str) -> set[str]:
        return {purchase_id} | {e.id for e in self.events_of.get((member, purchase_id), [])}

    def undos_of(self, member: str, purchase_id: str) -> list[CardTransaction]:
        names = self.names(member, purchase_id)
        return sorted(
            (u for u in self.undos if u.member_id == member and u.original_id in names),
            key=lambda u: u.id,
        )

    def voider(self, c: Collection, stamp: Stamp) -> str | None:
        """The undo that voids this stamp, given every undo naming its purchase so far."""
        undos = self.undos_of(c.member, stamp.purchase_id)
        if not undos:
            return None
        if self.programs[c.program_id].rules.partial_refunds is PartialRefunds.VOID:
            return undos[0].id
        for u in undos:
            if u.type != "refund" or u.currency != stamp.currency or u.amount >= stamp.amount:
                return u.id
        return undos[-1].id if sum(u.amount for u in undos) >= stamp.amount else None

    def rejudge(self, member: str, purchase: str, trigger: CardTransaction | None) -> None:
        for c in self.collections:
            stamp = c.stamps.get(purchase)
            if c.member != member or stamp is None or stamp.status == "voided":
                continue
            voider = self.voider(c, stamp)
            if voider is not None:
                self.void(c, stamp, trigger.id if trigger is not None else voider)

    def void(self, c: Collection, stamp: Stamp, by: str) -> None:
        was = stamp.status
        stamp.status, stamp.voided_by = "voided", by
        if was != "live":
            return
        c.progress -= 1
        if self.programs[c.program_id].rules.daily_cap_per_member is None or not c.live:
            return
        day = self.day(c, stamp)
        waiting = [s for s in c.stamps.values() if s.status == "capped" and self.day(c, s) == day]
        for s in sorted(waiting, key=lambda s: (s.occurred_at, s.purchase_id)):
            if not self.room_on(c, day):
                return
            self.count(c, s)

    def count(self, c: Collection, stamp: Stamp) -> None:
        stamp.status, stamp.cycle = "live", c.cycle
        c.progress += 1
        if c.progress >= self.programs[c.program_id].qualifying_threshold:
            self.reward(c, stamp)

    def reward(self, c: Collection, stamp: Stamp | None) -> None:
        program = self.programs[c.program_id]
        config = program.reward_config
        if isinstance(config, FixedReward):
            amount, currency = config.amount, config.currency
        elif stamp is None:
            currencies = program.rules.currencies or ()
            only = currencies[0] if len(currencies) == 1 else None
            amount, currency = 0, config.currency or only or "XXX"
        else:
            refunds = self.undos_of(c.member, stamp.purchase_id)
            refunded = sum(
                u.amount for u in refunds if u.type == "refund" and u.currency == stamp.currency
            )
            amount, currency = stamp.amount - refunded, stamp.currency
            if config.max_amount is not None and currency == config.currency:
                amount = min(amount, config.max_amount)
        named = None if stamp is None else stamp.transaction_id
        c.rewards[c.cycle] = (amount, currency, named)
        c.progress -= program.qualifying_threshold
        c.cycle += 1

    def settle(self, c: Collection, threshold: int) -> None:
        """Pay each cycle a lowered threshold completes for a payable purchase, or none."""
        named = {paid[2] for paid in c.rewards.values()}
        payable = [
            s
            for s in c.stamps.values()
            if s.status == "live" and s.cycle == c.cycle and s.transaction_id not in named
        ]
        payable.sort(key=lambda s: (s.occurred_at, s.purchase_id))
        payable = payable[-c.progress :]
        taken: list[Stamp] = []
        k = 0
        while c.progress >= threshold:
            k += 1
            if k * threshold <= len(payable):
                stamp: Stamp | None = payable[k * threshold - 1]
            else:
                stamp = next((s for s in reversed(payable) if s not in taken), None)
            if stamp is not None:
                taken.append(stamp)
            self.reward(c, stamp)

    # --- helpers ---------------------------------------------------------------------------

    def collection(self, collection_id: str) -> Collection:
        return next(c for c in self.collections if c.id == collection_id)

    def day(self, c: Collection, stamp: Stamp) -> date:
        zone = ZoneInfo(self.programs[c.program_id].rules.timezone)
        return stamp.occurred_at.astimezone(zone).date()

    def room_on(self, c: Collection, day: date) -> bool:
        cap = self.programs[c.program_id].rules.daily_cap_per_member
        live = sum(1 for s in c.stamps.values() if s.status == "live" and self.day(c, s) == day)
        return cap is None or live < cap
