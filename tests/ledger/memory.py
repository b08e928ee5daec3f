"""A ledger of plain dictionaries that reads a batch's view by the same keys as PostgreSQL.

It follows `ledger.scope` exactly as `ledger.views` does, and refuses what the database's
unique keys refuse, so the pure planner can be run over thousands of histories without a
database and still meet the rows it would meet there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from itertools import count

from ledger.batch import Incoming, Source
from ledger.domain import StampStatus, Tally, UndoFact, local_day
from ledger.errors import AdjustmentRefused
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
from ledger.thresholds import Adjustment, Settled, adjust
from rules import CardTransaction, Matcher, ProgramDefinition
from tests.ledger.model import Enrollment

SOURCE = Source("transactions", 0, 0)


class InMemoryLedger:
    """The ledger's rows, and the stamping use case over them."""

    def __init__(
        self, programs: Mapping[str, ProgramDefinition], enrollments: Iterable[Enrollment]
    ) -> None:
        self.programs = dict(programs)
        self.matcher = Matcher(programs.values())
        self.collections = {
            e.collection_id: CollectionView(
                e.collection_id, e.program_id, e.member_id, e.enrolled_at, Tally()
            )
            for e in enrollments
        }
        self.stamps: dict[StampKey, StampRow] = {}
        self.purchase_events: dict[str, PurchaseEventRow] = {}
        self.undos: dict[str, UndoFact] = {}
        self.rewards: dict[tuple[str, int], NewReward] = {}
        self.adjustments: dict[tuple[str, str], Adjustment] = {}  # (collection, key)
        self._ids = count(1)

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
        incoming = [
            Incoming(tx, tuple(p.id for p in self.matcher.qualifying(tx)), SOURCE) for tx in events
        ]
        plan = plan_batch(incoming, self.read_view(incoming), self.programs, now)
        self.write(plan)
        return plan

    def read_view(self, incoming: Sequence[Incoming]) -> LedgerView:
        locks = lock_keys(incoming)
        holders = {
            s.collection_id
            for s in self.stamps.values()
            if (self.collections[s.collection_id].member_id, s.purchase_id) in locks.purchases
        }
        collections = sorted(
            (
                c
                for c in self.collections.values()
                if (c.program_id, c.member_id) in locks.pairs
                or c.id in holders
                or c.member_id in locks.members
            ),
            key=lambda c: c.id,
        )
        named = name_keys(incoming)
        purchases = {
            (e.member_id, e.purchase_id)
            for e in self.purchase_events.values()
            if (e.member_id, e.id) in named or (e.member_id, e.purchase_id) in named
        }
        events = [
            e for e in self.purchase_events.values() if (e.member_id, e.purchase_id) in purchases
        ]
        keys = purchase_keys(incoming, events)
        ids = {c.id for c in collections}
        stamps = [
            s
            for s in self.stamps.values()
            if s.collection_id in ids and s.purchase_id in keys.purchases
        ]
        days = day_keys(incoming, collections, stamps, self.programs)
        capped = [s for s in self._on_days(days) if s.status is StampStatus.CAPPED]
        known = {s.key for s in stamps}
        return LedgerView(
            collections=tuple(collections),
            stamps=(*stamps, *(s for s in capped if s.key not in known)),
            purchase_events=tuple(events),
            undos=tuple(
                u
                for u in self.undos.values()
                if (u.member_id, u.original_id) in keys.names or u.id in keys.undo_ids
            ),
            day_live={
                day: sum(1 for s in self._on_days({day}) if s.status is StampStatus.LIVE)
                for day in days
            },
        )

    def _on_days(self, days: set[DayKey]) -> list[StampRow]:
        found = []
        for stamp in self.stamps.values():
            program = self.programs[self.collections[stamp.collection_id].program_id]
            if (stamp.collection_id, local_day(program, stamp.occurred_at)) in days:
                found.append(stamp)
        return found

    def write(self, plan: Plan) -> None:
        for item in plan.purchase_events:
            tx = item.tx
            self.purchase_events.setdefault(
                tx.id, PurchaseEventRow(tx.id, tx.purchase_id, tx.member_id)
            )
        for item in plan.undos:
            tx = item.tx
            assert tx.original_id is not None
            fact = UndoFact(tx.id, tx.original_id, tx.member_id, tx.type, tx.amount, tx.currency)
            self.undos.setdefault(tx.id, fact)
        for stamp in plan.new_stamps:
            assert stamp.key not in self.stamps, f"a second stamp for {stamp.key}"
            self.stamps[stamp.key] = replace(stamp, id=next(self._ids))
        for stamp in plan.changed_stamps:
            assert self.stamps[stamp.key].id == stamp.id
            self.stamps[stamp.key] = stamp
        for collection in plan.collections:
            self.collections[collection.id] = collection
        for reward in plan.rewards:
            key = (reward.collection_id, reward.cycle)
            assert key not in self.rewards, f"a second reward for {key}"
            self.rewards[key] = reward
