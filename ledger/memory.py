"""A ledger of plain dictionaries that reads a batch's view by the same keys as PostgreSQL.

It follows `ledger.scope` exactly as `ledger.views` does, and refuses what the database's
unique keys refuse, so the pure planner runs over it without a database and meets the rows it
would meet there: the property tests hold the planner to the model through it, and the
backtest replays past transactions through it. Its rows are indexed by the keys the view
reads, so a batch costs what it touches, not what the ledger holds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import count

from ledger.batch import Incoming, Source
from ledger.domain import StampStatus, Tally, UndoFact, local_day, refunded_part
from ledger.errors import AdjustmentRefused
from ledger.events import EVENT_TYPES
from ledger.model import (
    CollectionView,
    DayKey,
    LedgerView,
    NewReward,
    Plan,
    PurchaseEventRow,
    StampKey,
    StampRow,
)
from ledger.planner import plan_batch
from ledger.scope import day_keys, lock_keys, name_keys, purchase_keys
from ledger.thresholds import Adjustment, Payable, Settled, adjust, settle
from rules import CardTransaction, Matcher, ProgramDefinition

SOURCE = Source("transactions", 0, 0)
ERASED = "erased_"  # what an erased member is called here: the prefix and their id
Name = tuple[str, str]  # (member_id, an id an event goes by)


@dataclass(frozen=True, slots=True)
class Enrollment:
    """A member's collection in a program, from the moment they enrolled."""

    collection_id: str
    program_id: str
    member_id: str
    enrolled_at: datetime


class InMemoryLedger:
    """The ledger's rows, and the stamping use case over them."""

    def __init__(
        self,
        programs: Mapping[str, ProgramDefinition],
        enrollments: Iterable[Enrollment] = (),
        announce: frozenset[str] = frozenset(EVENT_TYPES),
    ) -> None:
        self.programs = dict(programs)
        self.matcher = Matcher(programs.values())
        self.announce = announce
        self.collections: dict[str, CollectionView] = {}
        self._of_member: dict[str, list[str]] = defaultdict(list)
        for enrollment in enrollments:
            self.enroll(enrollment)
        self.stamps: dict[StampKey, StampRow] = {}
        self._stamps_of_purchase: dict[str, list[StampKey]] = defaultdict(list)
        self._stamps_of_day: dict[DayKey, list[StampKey]] = defaultdict(list)
        self.purchase_events: dict[Name, PurchaseEventRow] = {}
        self._events_named: dict[Name, list[PurchaseEventRow]] = defaultdict(list)
        self._events_of_purchase: dict[Name, list[PurchaseEventRow]] = defaultdict(list)
        self.undos: dict[Name, UndoFact] = {}
        self._undos_naming: dict[Name, list[UndoFact]] = defaultdict(list)
        self.rewards: dict[tuple[str, int], NewReward] = {}
        self.adjustments: dict[tuple[str, str], Adjustment] = {}  # (collection, key)
        self.erased: dict[str, str] = {}  # member id -> pseudonym
        self._ids = count(1)

    def enroll(self, enrollment: Enrollment) -> None:
        """Open a collection; enrolling the same collection twice changes nothing."""
        if enrollment.collection_id in self.collections:
            return
        e = enrollment
        view = CollectionView(e.collection_id, e.program_id, e.member_id, e.enrolled_at, Tally())
        self.collections[e.collection_id] = view
        self._of_member[e.member_id].append(e.collection_id)

    def adjust(self, adjustment: Adjustment, key: str, now: datetime) -> Settled | None:
        """The adjustment use case over these rows: None when refused or already made."""
        if (adjustment.collection_id, key) in self.adjustments:
            return None
        collection = self.collections[adjustment.collection_id]
        live = [
            s
            for s in self.stamps.values()
            if s.collection_id == collection.id and s.status is StampStatus.LIVE
        ]
        latest = max(live, key=lambda s: s.id or 0, default=None)
        program = self.programs[collection.program_id]
        try:
            settled = adjust(program, collection, adjustment, latest, now)
        except AdjustmentRefused:
            return None
        self.adjustments[(adjustment.collection_id, key)] = adjustment
        self.write(Plan(collections=(settled.collection,), rewards=settled.rewards))
        return settled

    def stamp(self, events: Sequence[CardTransaction], now: datetime) -> Plan:
        """Match, plan and write one batch of events, in order."""
        return self.apply([self.incoming(tx) for tx in events], now)

    def incoming(self, tx: CardTransaction) -> Incoming:
        """The event with the active programs it qualifies for, as the worker decodes it; an
        erased member's under their pseudonym."""
        qualifying, related = self.matcher.judge(tx)
        if tx.member_id in self.erased:
            tx = tx.model_copy(update={"member_id": self.erased[tx.member_id]})
        return Incoming(tx, tuple(p.id for p in qualifying), SOURCE, related)

    def apply_program(self, definition: ProgramDefinition, now: datetime) -> bool:
        """Apply a newer version of a program, as `ledger.programs.apply_definition` does:
        a lowered threshold settles every collection whose count reaches it at once."""
        before = self.programs.get(definition.id)
        if before is not None and before.version >= definition.version:
            return False
        self.programs[definition.id] = definition
        self.matcher.upsert(definition)
        if before is not None and before.rules.timezone != definition.rules.timezone:
            self._days_again(definition.id)
        if before is None or definition.qualifying_threshold >= before.qualifying_threshold:
            return True
        for collection in list(self.collections.values()):
            reaching = collection.tally.unredeemed_purchases >= definition.qualifying_threshold
            if collection.program_id == definition.id and reaching:
                settled = settle(definition, collection, self._payable(collection), now)
                self.write(Plan(collections=(settled.collection,), rewards=settled.rewards))
        return True

    def _payable(self, collection: CollectionView) -> list[Payable]:
        """As `ledger.settlement` reads them: live stamps of the current cycle no reward of
        the collection names, with what partial refunds gave back of each purchase."""
        named = {r.purchase_id for r in self.rewards.values() if r.collection_id == collection.id}
        member = collection.member_id
        return [
            Payable(s, refunded_part(s.currency, self._undos_of(member, s.purchase_id)))
            for s in self.stamps.values()
            if s.collection_id == collection.id
            and s.status is StampStatus.LIVE
            and s.cycle == collection.tally.cycle
            and s.purchase_id not in named
        ]

    def _undos_of(self, member: str, purchase: str) -> list[UndoFact]:
        names = {purchase} | {e.id for e in self._events_of_purchase.get((member, purchase), ())}
        found = {u.id: u for n in names for u in self._undos_naming.get((member, n), ())}
        return list(found.values())

    def unenroll(self, collection_id: str, now: datetime) -> None:
        """End a collection: it stamps nothing new; undos still void its stamps."""
        self.collections[collection_id] = replace(self.collections[collection_id], stamping=False)

    def erase(self, member_id: str, now: datetime) -> str:
        """Rename the member everywhere to a pseudonym and end their collections; their later
        events act on the renamed rows (`ledger.erasure`)."""
        alias = self.erased.setdefault(member_id, ERASED + member_id)
        for cid in self._of_member.pop(member_id, []):
            collection = replace(self.collections[cid], member_id=alias, stamping=False)
            self.collections[cid] = collection
            self._of_member[alias].append(cid)
        events, undos = list(self.purchase_events.values()), list(self.undos.values())
        self.purchase_events, self.undos = {}, {}
        self._events_named.clear()
        self._events_of_purchase.clear()
        self._undos_naming.clear()
        for e in events:
            self._remember_row(replace(e, member_id=alias) if e.member_id == member_id else e)
        for u in undos:
            self._record_undo(replace(u, member_id=alias) if u.member_id == member_id else u)
        return alias

    def apply(self, incoming: Sequence[Incoming], now: datetime) -> Plan:
        """Plan already matched events against what the ledger holds, and write the plan."""
        plan = plan_batch(incoming, self.read_view(incoming), self.programs, now)
        self.write(plan)
        return plan

    def read_view(self, incoming: Sequence[Incoming]) -> LedgerView:
        """What the batch may touch, read in the order of `ledger.scope`."""
        collections = self._locked(incoming)
        named = name_keys(incoming)
        purchases = {
            (e.member_id, e.purchase_id) for n in named for e in self._events_named.get(n, ())
        }
        purchases |= {n for n in named if n in self._events_of_purchase}
        events = [e for p in sorted(purchases) for e in self._events_of_purchase[p]]
        keys = purchase_keys(incoming, events)
        ids = {c.id for c in collections}
        stamps = self._rows(
            k for p in keys.purchases for k in self._stamps_of_purchase.get(p, ()) if k[0] in ids
        )
        days = day_keys(incoming, collections, stamps, self.programs)
        on_days = {day: self._rows(self._stamps_of_day.get(day, ())) for day in days}
        known = {s.key for s in stamps}
        capped = self._rows(
            s.key
            for rows in on_days.values()
            for s in rows
            if s.status is StampStatus.CAPPED and s.key not in known
        )
        undos = {(u.member_id, u.id): u for n in keys.names for u in self._undos_naming.get(n, ())}
        undos |= {k: self.undos[k] for k in keys.undo_ids if k in self.undos}
        return LedgerView(
            collections=tuple(collections),
            stamps=(*stamps, *capped),
            purchase_events=tuple(events),
            undos=tuple(sorted(undos.values(), key=lambda u: (u.member_id, u.id))),
            day_live={
                day: sum(1 for s in rows if s.status is StampStatus.LIVE)
                for day, rows in on_days.items()
            },
            announce=self.announce,
        )

    def _locked(self, incoming: Sequence[Incoming]) -> list[CollectionView]:
        locks = lock_keys(incoming)
        holders = {
            k[0]
            for m, p in locks.purchases
            for k in self._stamps_of_purchase.get(p, ())
            if self.collections[k[0]].member_id == m
        }
        members = {m for _, m in locks.pairs} | set(locks.members)
        members |= {self.collections[cid].member_id for cid in holders}
        found = {
            cid: self.collections[cid]
            for m in members
            for cid in self._of_member.get(m, ())
            if (self.collections[cid].program_id, m) in locks.pairs
            or cid in holders
            or m in locks.members
        }
        return [found[cid] for cid in sorted(found)]

    def _rows(self, keys: Iterable[StampKey]) -> list[StampRow]:
        """The stamps of `keys`, once each, in the order they were written."""
        rows = {self.stamps[k] for k in keys}
        return sorted(rows, key=lambda s: s.id or 0)

    def write(self, plan: Plan) -> None:
        """Write a plan, refusing what the database's unique keys refuse."""
        for item in plan.purchase_events:
            self._remember(item.tx)
        for item in plan.undos:
            tx = item.tx
            assert tx.original_id is not None
            fact = UndoFact(tx.id, tx.original_id, tx.member_id, tx.type, tx.amount, tx.currency)
            self._record_undo(fact)
        for stamp in plan.new_stamps:
            assert stamp.key not in self.stamps, f"a second stamp for {stamp.key}"
            self._add_stamp(replace(stamp, id=next(self._ids)))
        for stamp in plan.changed_stamps:
            assert self.stamps[stamp.key].id == stamp.id
            self.stamps[stamp.key] = stamp
        for collection in plan.collections:
            self.collections[collection.id] = collection
        for reward in plan.rewards:
            key = (reward.collection_id, reward.cycle)
            assert key not in self.rewards, f"a second reward for {key}"
            self.rewards[key] = reward

    def _remember(self, tx: CardTransaction) -> None:
        self._remember_row(PurchaseEventRow(tx.id, tx.purchase_id, tx.member_id, tx.occurred_at))

    def _remember_row(self, row: PurchaseEventRow) -> None:
        if (row.member_id, row.id) in self.purchase_events:
            return
        self.purchase_events[(row.member_id, row.id)] = row
        self._events_named[(row.member_id, row.id)].append(row)
        self._events_of_purchase[(row.member_id, row.purchase_id)].append(row)

    def _record_undo(self, fact: UndoFact) -> None:
        if (fact.member_id, fact.id) in self.undos:
            return
        self.undos[(fact.member_id, fact.id)] = fact
        self._undos_naming[(fact.member_id, fact.original_id)].append(fact)

    def _add_stamp(self, stamp: StampRow) -> None:
        self.stamps[stamp.key] = stamp
        self._stamps_of_purchase[stamp.purchase_id].append(stamp.key)
        self._add_to_day(stamp)

    def _add_to_day(self, stamp: StampRow) -> None:
        # Every stamp, capped program or not: an edit may add a cap, and then counts the day's
        # stamps made before it, as PostgreSQL's scan of the day does.
        program = self.programs[self.collections[stamp.collection_id].program_id]
        day = local_day(program, stamp.occurred_at)
        self._stamps_of_day[(stamp.collection_id, day)].append(stamp.key)

    def _days_again(self, program_id: str) -> None:
        """Index the program's stamps by day anew: an edit moved its clock."""
        ours = {cid for cid, c in self.collections.items() if c.program_id == program_id}
        self._stamps_of_day = defaultdict(
            list, {day: keys for day, keys in self._stamps_of_day.items() if day[0] not in ours}
        )
        for stamp in sorted(self.stamps.values(), key=lambda s: s.id or 0):
            if stamp.collection_id in ours:
                self._add_to_day(stamp)
