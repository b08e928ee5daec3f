"""The stamping rules as a reference model: short, slow and plainly right.

It replays the events one at a time in arrival order, with nothing but dictionaries and
loops, and says what the ledger must hold afterwards. The planner (`ledger.planner`) must
reach the same state whatever the batching, duplicates and redeliveries, and the model's own
stamps and voids must not depend on the order (`test_model.py`). Reading guide:

- a repeated id changes nothing; a purchase event that qualifies for no active program
  (ignoring the type it stamps on) is forgotten;
- a purchase is the remembered events of one member sharing a purchase_id; an undo names its
  purchase_id or the id of any of its remembered events;
- a program's stamp is made by the first event of its type, if the member enrolled before it
  happened; it is born voided when an undo already voids it, capped when its day is full;
- an undo voids every stamp of the purchases it names (partial refunds per program policy);
  a voided live stamp frees its day's slot for the earliest capped stamp of that day;
- a live stamp counts one; a cycle completed pays its reward at once; a void takes one
  away, from the current cycle or owed by the next;
- an adjustment adds or takes away stamps: each cycle an addition completes pays its reward
  at once, for the latest live stamp (an addition that would complete one with no live
  stamp is refused and changes nothing); a deduction takes away from the current cycle or
  is owed by the next; a repeated idempotency key on a collection changes nothing.
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


@dataclass
class Stamp:
    purchase_id: str
    transaction_id: str
    amount: int
    currency: str
    occurred_at: datetime
    status: str = "capped"
    voided_by: str | None = None


@dataclass
class Collection:
    id: str
    program: ProgramDefinition
    member: str
    enrolled_at: datetime
    progress: int = 0
    cycle: int = 1
    stamps: dict[str, Stamp] = field(default_factory=dict)
    rewards: dict[int, tuple[int, str, str]] = field(default_factory=dict)  # cycle -> paid

    def day(self, stamp: Stamp) -> date:
        return stamp.occurred_at.astimezone(ZoneInfo(self.program.rules.timezone)).date()

    def live_on(self, day: date) -> int:
        return sum(1 for s in self.stamps.values() if s.status == "live" and self.day(s) == day)


def would_qualify(program: ProgramDefinition, tx: CardTransaction) -> bool:
    """Whether the event meets every condition of the program but the type it stamps on."""
    as_stamping_type = tx.model_copy(update={"type": TransactionType(program.rules.stamp_on)})
    return qualifies(program, as_stamping_type)


class Model:
    def __init__(
        self, programs: Mapping[str, ProgramDefinition], enrollments: Iterable[Enrollment]
    ):
        self.programs = programs
        self.collections = [
            Collection(e.collection_id, programs[e.program_id], e.member_id, e.enrolled_at)
            for e in enrollments
        ]
        self.seen: set[str] = set()
        self.events_of: dict[tuple[str, str], set[str]] = {}  # (member, purchase) -> ids
        self.undos: list[CardTransaction] = []
        self.adjustment_keys: set[tuple[str, str]] = set()

    def apply(self, events: Iterable[CardTransaction]) -> Model:
        for tx in events:
            if tx.id not in self.seen:
                self.purchase(tx) if tx.is_purchase else self.undo(tx)
        return self

    def purchase(self, tx: CardTransaction) -> None:
        qualifying = [p for p in self.programs.values() if would_qualify(p, tx)]
        if not qualifying:
            return
        self.seen.add(tx.id)
        self.events_of.setdefault((tx.member_id, tx.purchase_id), set()).add(tx.id)
        self.rejudge(tx.member_id, trigger=None)
        for c in self.collections:
            stamps_here = c.program in qualifying and c.program.rules.stamp_on == tx.type
            if c.member != tx.member_id or not stamps_here or c.enrolled_at > tx.occurred_at:
                continue
            if tx.purchase_id in c.stamps:
                continue
            stamp = Stamp(tx.purchase_id, tx.id, tx.amount, tx.currency, tx.occurred_at)
            c.stamps[tx.purchase_id] = stamp
            voider = self.voider(c, stamp)
            cap = c.program.rules.daily_cap_per_member
            if voider is not None:
                stamp.status, stamp.voided_by = "voided", voider
            elif cap is None or c.live_on(c.day(stamp)) < cap:
                self.count(c, stamp)

    def undo(self, tx: CardTransaction) -> None:
        self.seen.add(tx.id)
        self.undos.append(tx)
        self.rejudge(tx.member_id, trigger=tx)

    def names(self, member: str, purchase_id: str) -> set[str]:
        return {purchase_id} | self.events_of.get((member, purchase_id), set())

    def voider(self, c: Collection, stamp: Stamp) -> str | None:
        """The undo that voids this stamp, given every undo naming its purchase so far."""
        names = self.names(c.member, stamp.purchase_id)
        undos = sorted(
            (u for u in self.undos if u.member_id == c.member and u.original_id in names),
            key=lambda u: u.id,
        )
        if not undos:
            return None
        if c.program.rules.partial_refunds is PartialRefunds.VOID:
            return undos[0].id
        for u in undos:
            if u.currency != stamp.currency or u.amount >= stamp.amount:
                return u.id
        return undos[-1].id if sum(u.amount for u in undos) >= stamp.amount else None

    def rejudge(self, member: str, trigger: CardTransaction | None) -> None:
        for c in self.collections:
            if c.member != member:
                continue
            for stamp in list(c.stamps.values()):
                if stamp.status == "voided":
                    continue
                voider = self.voider(c, stamp)
                if voider is not None:
                    self.void(c, stamp, trigger.id if trigger is not None else voider)

    def void(self, c: Collection, stamp: Stamp, undo_id: str) -> None:
        was = stamp.status
        stamp.status, stamp.voided_by = "voided", undo_id
        if was != "live":
            return
        c.progress -= 1
        waiting = [s for s in c.stamps.values() if s.status == "capped"]
        waiting = [s for s in waiting if c.day(s) == c.day(stamp)]
        if c.program.rules.daily_cap_per_member is not None and waiting:
            self.count(c, min(waiting, key=lambda s: (s.occurred_at, s.purchase_id)))

    def adjust(self, collection_id: str, delta: int, key: str) -> bool:
        """Add or take away stamps; whether the adjustment was made."""
        c = next(c for c in self.collections if c.id == collection_id)
        if (collection_id, key) in self.adjustment_keys:
            return False
        live = [s for s in c.stamps.values() if s.status == "live"]
        if delta > 0 and not isinstance(c.program.reward_config, FixedReward):
            return False  # a refund program's rewards pay back purchases: none is added
        if delta > 0 and c.progress + delta >= c.program.qualifying_threshold and not live:
            return False
        self.adjustment_keys.add((collection_id, key))
        c.progress += delta
        while c.progress >= c.program.qualifying_threshold:
            self.reward(c, live[-1])
        return True

    def count(self, c: Collection, stamp: Stamp) -> None:
        stamp.status = "live"
        c.progress += 1
        if c.progress >= c.program.qualifying_threshold:
            self.reward(c, stamp)

    def reward(self, c: Collection, stamp: Stamp) -> None:
        config = c.program.reward_config
        if isinstance(config, FixedReward):
            paid = (config.amount, config.currency)
        elif config.max_amount is not None and stamp.currency == config.currency:
            paid = (min(stamp.amount, config.max_amount), stamp.currency)
        else:
            paid = (stamp.amount, stamp.currency)
        c.rewards[c.cycle] = (*paid, stamp.transaction_id)
        c.progress -= c.program.qualifying_threshold
        c.cycle += 1
