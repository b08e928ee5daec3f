"""Plans the effects of a batch of transaction events: pure, given what the ledger holds.

The events are applied in order, each seeing the effects of those before it, so a batch
split anywhere plans the same effects as the events one at a time. The rules:

- **Ids are the member's**: an event, a purchase and an undo are known by member and id.
- **A purchase** is the events of one member that share a `purchase_id`. A stamping event
  (auth or clearing) that qualifies for some active program, whatever type that program
  stamps on, or that meets every condition of one but the amount and the time (`related`),
  is remembered as part of its purchase; any other is forgotten, having no effect.
- **A purchase happens at its earliest remembered event.** A stamp is one purchase on one
  collection, made by the event of the type its program stamps on, if the member enrolled
  at or before the purchase happened. Once made it is never made again: redelivery, a
  second clearing or an auth after the clearing change nothing. An event that shows the
  purchase happened before the collection's enrollment withdraws the stamp (a void by it).
- **An undo** (refund, reversal) names the `purchase_id` or the id of any remembered event
  of a purchase. Every undo is remembered; it voids the purchase's stamps whenever both are
  known, whichever came first, under the program's partial-refund policy
  (`ledger.domain.voiding_undo`). A stamp whose undo was known first is born voided and
  never counted.
- **A daily cap** keeps a stamp over the cap `capped`; when a live stamp of that day is
  voided, the earliest capped ones of the day take the free slots of a live collection. So
  a day's live stamps are always `min(cap, purchases of the day not undone)`.
- **The count** follows `ledger.domain.Tally`; a cycle completed is rewarded at once, for
  the purchase that completed it, less what partial refunds kept under `keep` gave back.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from ledger.batch import BatchOutcome, Incoming
from ledger.domain import (
    StampStatus,
    Tally,
    UndoFact,
    local_day,
    refunded_part,
    voiding_undo,
)
from ledger.effects import collection_ref, purchase_ref, reward_for, reward_triggered
from ledger.events import (
    OutboxEvent,
    StampCollected,
    StampVoided,
)
from ledger.model import CollectionView, LedgerView, NewReward, Plan, StampRow
from rules import CardTransaction, ProgramDefinition

Programs = Mapping[str, ProgramDefinition]


def plan_batch(
    incoming: Sequence[Incoming], view: LedgerView, programs: Programs, now: datetime
) -> Plan:
    """The effects of `incoming`, applied in order to what `view` holds."""
    planner = _Planner(view, programs, now)
    for item in incoming:
        if item.tx.is_purchase:
            planner.purchase(item)
        else:
            planner.undo(item)
    return planner.plan()


class _Planner:
    """Walks the batch in order, keeping the in-batch effects visible to later events."""

    def __init__(self, view: LedgerView, programs: Programs, now: datetime) -> None:
        self.programs, self.now = programs, now
        self.collections = {c.id: c for c in view.collections}
        # Where a purchase may stamp: a member's live collection in each program, never an
        # unenrolled one (which is here only for the undos of its past purchases).
        self.by_pair = {(c.program_id, c.member_id): c.id for c in view.collections if c.stamping}
        self.of_member: dict[str, list[str]] = defaultdict(list)
        for c in view.collections:
            self.of_member[c.member_id].append(c.id)
        self.stored = {s.key: s for s in view.stamps}
        self.stamps = dict(self.stored)
        self.purchase_of = {(e.member_id, e.id): e.purchase_id for e in view.purchase_events}
        self.ids_of: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.happened: dict[tuple[str, str], datetime] = {}
        for e in view.purchase_events:
            self.ids_of[(e.member_id, e.purchase_id)].add(e.id)
            if e.occurred_at is not None:
                self._happens((e.member_id, e.purchase_id), e.occurred_at)
        self.undos = {(u.member_id, u.id): u for u in view.undos}
        self.naming: dict[tuple[str, str], list[UndoFact]] = defaultdict(list)
        for u in view.undos:
            self.naming[(u.member_id, u.original_id)].append(u)
        self.day_live = dict(view.day_live)
        self.announce = view.announce
        self.changed: dict[str, None] = {}
        self.new_events: list[Incoming] = []
        self.new_undos: list[Incoming] = []
        self.rewards: list[NewReward] = []
        self.events: list[OutboxEvent] = []
        self.counts: dict[str, int] = defaultdict(int)

    # --- events -------------------------------------------------------------------------

    def purchase(self, item: Incoming) -> None:
        tx = item.tx
        if not item.qualifying and not item.related:
            self.counts["unmatched"] += 1
            return
        if (tx.member_id, tx.id) in self.purchase_of:
            self.counts["repeated"] += 1
            return
        self.counts["applied"] += 1
        self.new_events.append(item)
        member, purchase = tx.member_id, tx.purchase_id
        self.purchase_of[(member, tx.id)] = purchase
        self.ids_of[(member, purchase)].add(tx.id)
        if self._happens((member, purchase), tx.occurred_at):
            self._withdraw(member, purchase, tx)
        # This event may be the one an earlier undo named: the purchase may now be undone.
        self._rejudge(member, purchase, trigger=None)
        for program_id in item.qualifying:
            self._stamp(self.programs[program_id], item)

    def undo(self, item: Incoming) -> None:
        tx = item.tx
        assert tx.original_id is not None
        if (tx.member_id, tx.id) in self.undos:
            self.counts["repeated"] += 1
            return
        self.counts["applied"] += 1
        self.new_undos.append(item)
        fact = UndoFact(tx.id, tx.original_id, tx.member_id, tx.type, tx.amount, tx.currency)
        self.undos[(fact.member_id, fact.id)] = fact
        self.naming[(fact.member_id, fact.original_id)].append(fact)
        named = {fact.original_id, self.purchase_of.get((fact.member_id, fact.original_id))}
        purchases = {p for p in named if p is not None}
        if not any(self._known(fact.member_id, p) for p in purchases):
            self.counts["waiting_undos"] += 1
        for purchase in sorted(purchases):
            self._rejudge(fact.member_id, purchase, trigger=fact)

    # --- stamping -----------------------------------------------------------------------

    def _stamp(self, program: ProgramDefinition, item: Incoming) -> None:
        tx = item.tx
        cid = self.by_pair.get((program.id, tx.member_id))
        if cid is None or _stamp_type(program) != tx.type:
            return
        collection = self.collections[cid]
        happened = self.happened[(tx.member_id, tx.purchase_id)]
        if collection.enrolled_at > happened or (cid, tx.purchase_id) in self.stamps:
            return
        undo = self._voiding(program, tx.member_id, tx.purchase_id, tx.amount, tx.currency)
        status = StampStatus.VOIDED if undo is not None else StampStatus.LIVE
        stamp = StampRow(
            collection_id=cid,
            purchase_id=tx.purchase_id,
            transaction_id=tx.id,
            cycle=collection.tally.cycle,
            amount=tx.amount,
            currency=tx.currency,
            merchant_id=tx.merchant.id,
            merchant_name=tx.merchant.name,
            occurred_at=tx.occurred_at,
            status=status,
            void_transaction_id=undo,
        )
        if undo is not None:
            self.stamps[stamp.key] = stamp
        elif self._day_is_full(program, stamp):
            self.stamps[stamp.key] = replace(stamp, status=StampStatus.CAPPED)
        else:
            self._count(program, stamp)

    def _count(self, program: ProgramDefinition, stamp: StampRow) -> None:
        """Make `stamp` live: count it, and reward the cycle it completes."""
        collection = self.collections[stamp.collection_id]
        tally, completed = collection.tally.plus_one(program.qualifying_threshold)
        live = stamp
        if stamp.status is not StampStatus.LIVE or stamp.cycle != collection.tally.cycle:
            live = replace(stamp, status=StampStatus.LIVE, cycle=collection.tally.cycle)
        self.stamps[live.key] = live
        collection = self._set_tally(collection, tally)
        self._add_to_day(program, live, 1)
        self.counts["stamps"] += 1
        if "stamp.collected" in self.announce:
            self.events.append(
                StampCollected(
                    timestamp=self.now,
                    collection=collection_ref(collection, program),
                    purchase=purchase_ref(live),
                    cycle=live.cycle,
                    unredeemed_purchases=tally.unredeemed_purchases,
                )
            )
        if completed is not None:
            self._reward(collection, program, live, completed)

    def _reward(
        self, collection: CollectionView, program: ProgramDefinition, stamp: StampRow, cycle: int
    ) -> None:
        undos = self._undos_of(collection.member_id, stamp.purchase_id)
        refunded = refunded_part(stamp.currency, undos)
        reward = reward_for(program, collection.id, stamp, cycle, refunded)
        self.rewards.append(reward)
        self.counts["rewards"] += 1
        if "reward.triggered" in self.announce:
            self.events.append(reward_triggered(reward, collection, program, stamp, self.now))

    # --- undoing ------------------------------------------------------------------------

    def _rejudge(self, member: str, purchase: str, trigger: UndoFact | None) -> None:
        """Void the purchase's stamps that its undos now void."""
        for cid in self.of_member.get(member, ()):
            stamp = self.stamps.get((cid, purchase))
            if stamp is None or stamp.status is StampStatus.VOIDED:
                continue
            program = self.programs[self.collections[cid].program_id]
            undo = self._voiding(program, member, purchase, stamp.amount, stamp.currency)
            if undo is not None:
                by = trigger.id if trigger else undo
                self._void(program, stamp, by, self.undos[(member, by)].type)

    def _withdraw(self, member: str, purchase: str, earlier: CardTransaction) -> None:
        """Void the purchase's stamps on collections enrolled after it now turns out to have
        happened: `earlier`, arriving late, is its first event."""
        for cid in self.of_member.get(member, ()):
            stamp = self.stamps.get((cid, purchase))
            if stamp is None or stamp.status is StampStatus.VOIDED:
                continue
            collection = self.collections[cid]
            if collection.enrolled_at > earlier.occurred_at:
                program = self.programs[collection.program_id]
                self._void(program, stamp, earlier.id, str(earlier.type))

    def _undos_of(self, member: str, purchase: str) -> list[UndoFact]:
        """Every undo naming the purchase: its purchase id or the id of any of its events."""
        names = {purchase} | self.ids_of.get((member, purchase), set())
        found = {u.id: u for name in names for u in self.naming.get((member, name), ())}
        return list(found.values())

    def _voiding(
        self, program: ProgramDefinition, member: str, purchase: str, amount: int, currency: str
    ) -> str | None:
        if not self.naming:
            return None  # no undo anywhere near this batch
        policy = program.rules.partial_refunds
        return voiding_undo(policy, amount, currency, self._undos_of(member, purchase))

    def _void(self, program: ProgramDefinition, stamp: StampRow, by: str, by_type: str) -> None:
        """Void `stamp` by the event `by` (an undo, or an earlier event that withdraws it)."""
        self.stamps[stamp.key] = replace(stamp, status=StampStatus.VOIDED, void_transaction_id=by)
        if stamp.status is StampStatus.CAPPED:
            return  # never counted, never announced
        collection = self.collections[stamp.collection_id]
        collection = self._set_tally(collection, collection.tally.minus_one())
        self.counts["voids"] += 1
        if "stamp.voided" in self.announce:
            self.events.append(
                StampVoided(
                    timestamp=self.now,
                    collection=collection_ref(collection, program),
                    purchase_id=stamp.purchase_id,
                    voided_by_transaction_id=by,
                    voided_by_type=by_type,
                    unredeemed_purchases=collection.tally.unredeemed_purchases,
                )
            )
        if self._add_to_day(program, stamp, -1):
            self._promote(program, stamp)

    def _promote(self, program: ProgramDefinition, freed: StampRow) -> None:
        """Count the earliest capped stamps of the day a voided stamp freed a slot on, while
        the day is below the cap (an edit may have moved it); never on an unenrolled
        collection, which stamps nothing new."""
        if not self.collections[freed.collection_id].stamping:
            return
        day = local_day(program, freed.occurred_at)
        waiting = sorted(
            (
                s
                for s in self.stamps.values()
                if s.collection_id == freed.collection_id
                and s.status is StampStatus.CAPPED
                and local_day(program, s.occurred_at) == day
            ),
            key=lambda s: (s.occurred_at, s.purchase_id),
        )
        for stamp in waiting:
            if self._day_is_full(program, stamp):
                return
            self._count(program, stamp)

    # --- bookkeeping --------------------------------------------------------------------

    def _day_is_full(self, program: ProgramDefinition, stamp: StampRow) -> bool:
        cap = program.rules.daily_cap_per_member
        if cap is None:
            return False
        return self.day_live[(stamp.collection_id, local_day(program, stamp.occurred_at))] >= cap

    def _add_to_day(self, program: ProgramDefinition, stamp: StampRow, change: int) -> bool:
        """Move the live count of the stamp's day, for capped programs; whether it did."""
        if program.rules.daily_cap_per_member is None:
            return False
        self.day_live[(stamp.collection_id, local_day(program, stamp.occurred_at))] += change
        return True

    def _happens(self, purchase: tuple[str, str], at: datetime) -> bool:
        """Note an event of the purchase at `at`; whether it is now its earliest."""
        if purchase in self.happened and self.happened[purchase] <= at:
            return False
        self.happened[purchase] = at
        return True

    def _set_tally(self, collection: CollectionView, tally: Tally) -> CollectionView:
        changed = replace(collection, tally=tally)
        self.collections[collection.id] = changed
        self.changed[collection.id] = None
        return changed

    def _known(self, member: str, purchase: str) -> bool:
        return bool(self.ids_of.get((member, purchase))) or any(
            (cid, purchase) in self.stamps for cid in self.of_member.get(member, ())
        )

    def plan(self) -> Plan:
        return Plan(
            purchase_events=tuple(self.new_events),
            undos=tuple(self.new_undos),
            new_stamps=tuple(s for k, s in self.stamps.items() if k not in self.stored),
            changed_stamps=tuple(
                s for k, s in self.stamps.items() if k in self.stored and s != self.stored[k]
            ),
            collections=tuple(self.collections[cid] for cid in self.changed),
            rewards=tuple(self.rewards),
            events=tuple(self.events),
            outcome=BatchOutcome(**self.counts),
        )


def _stamp_type(program: ProgramDefinition) -> str:
    # A plain string: StampOn and TransactionType are two enums of the same words.
    return str(program.rules.stamp_on)
