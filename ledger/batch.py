"""Plans the effects of a batch of new transaction events: pure, given what the ledger holds."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from zoneinfo import ZoneInfo

from ledger.domain import CollectionState, NewReward, NewStamp, Void
from rules import CardTransaction, ProgramDefinition


@dataclass(frozen=True)
class KnownStamp:
    """A stamp already in the ledger, as the planner needs it."""

    id: int
    collection_id: str
    purchase_id: str
    transaction_id: str
    voided: bool


@dataclass(frozen=True)
class Parked:
    """An undo waiting for its purchase."""

    undo_id: str
    original_id: str
    member_id: str


@dataclass
class LedgerView:
    """What the ledger holds about the members of a batch, read under the collections' locks."""

    # (program_id, member_id) -> collection, only for collections locked for this batch.
    collections: dict[tuple[str, str], CollectionState]
    stamps: list[KnownStamp]
    # Ids and purchase ids of earlier events named by this batch's undos.
    processed_originals: set[str]
    parked: list[Parked]
    # (collection_id, local day) -> stamps not voided on that day, for capped programs.
    day_counts: dict[tuple[str, date], int]


@dataclass
class Plan:
    """Everything one batch changes, to be written in one database transaction."""

    stamps: list[NewStamp] = field(default_factory=list)
    voids: list[Void] = field(default_factory=list)
    rewards: list[NewReward] = field(default_factory=list)
    parked: list[CardTransaction] = field(default_factory=list)
    unparked: list[str] = field(default_factory=list)
    capped: list[tuple[str, str]] = field(default_factory=list)

    def changed_collections(self, view: LedgerView) -> list[CollectionState]:
        return [c for c in view.collections.values() if c.changed]


def local_day(program: ProgramDefinition, tx: CardTransaction) -> date:
    return tx.occurred_at.astimezone(ZoneInfo(program.rules.timezone)).date()


class _Planner:
    """Walks the batch in order, keeping the in-batch effects visible to later events."""

    def __init__(self, view: LedgerView, programs: Mapping[str, ProgramDefinition]) -> None:
        self.view, self.programs, self.plan = view, programs, Plan()
        self.by_id = {c.id: c for c in view.collections.values()}
        self.stamped = {(s.collection_id, s.purchase_id) for s in view.stamps}
        self.live: dict[str, list[KnownStamp | NewStamp]] = defaultdict(list)
        for stamp in view.stamps:
            if not stamp.voided:
                self._remember(stamp, stamp.purchase_id, stamp.transaction_id)
        self.parked = {(p.member_id, p.original_id): p.undo_id for p in view.parked}
        self.seen = set(view.processed_originals)
        self.day_counts = dict(view.day_counts)

    def _remember(self, stamp: KnownStamp | NewStamp, *keys: str) -> None:
        for key in set(keys):
            self.live[key].append(stamp)

    def purchase(self, tx: CardTransaction, matched: Sequence[str]) -> None:
        self.seen.update((tx.id, tx.purchase_id))
        undo = self._take_parked(tx)
        for program_id in matched:
            collection = self.view.collections.get((program_id, tx.member_id))
            if collection is None or not collection.accepts(tx):
                continue
            if (collection.id, tx.purchase_id) in self.stamped:
                continue
            if self._capped(collection, tx):
                self.plan.capped.append((collection.id, tx.id))
                continue
            self.stamped.add((collection.id, tx.purchase_id))
            self._stamp(collection, tx, undo)

    def _take_parked(self, tx: CardTransaction) -> str | None:
        for key in (tx.id, tx.purchase_id):
            undo = self.parked.pop((tx.member_id, key), None)
            if undo is not None:
                self.plan.unparked.append(undo)
                return undo
        return None

    def _capped(self, collection: CollectionState, tx: CardTransaction) -> bool:
        program = self.programs[collection.program_id]
        cap = program.rules.daily_cap_per_member
        if cap is None:
            return False
        day = (collection.id, local_day(program, tx))
        if self.day_counts.get(day, 0) >= cap:
            return True
        self.day_counts[day] = self.day_counts.get(day, 0) + 1
        return False

    def _stamp(self, collection: CollectionState, tx: CardTransaction, undo: str | None) -> None:
        if undo is not None:
            # Its undo came first: record the stamp as voided; the count never saw it.
            left = collection.unredeemed_purchases
            self.plan.stamps.append(NewStamp(collection.id, tx, collection.cycle, undo, left))
            return
        stamp, reward = collection.stamp(tx)
        self.plan.stamps.append(stamp)
        self._remember(stamp, tx.purchase_id, tx.id)
        if reward is not None:
            self.plan.rewards.append(reward)

    def undo(self, tx: CardTransaction) -> None:
        assert tx.original_id is not None
        targets = [s for s in self.live.pop(tx.original_id, []) if self._owned_by(s, tx)]
        if not targets:
            if tx.original_id not in self.seen:
                self.plan.parked.append(tx)
                self.parked[(tx.member_id, tx.original_id)] = tx.id
            return
        for stamp in targets:
            self._void(stamp, tx)

    def _owned_by(self, stamp: KnownStamp | NewStamp, tx: CardTransaction) -> bool:
        collection = self.by_id.get(stamp.collection_id)
        return collection is not None and collection.member_id == tx.member_id

    def _void(self, stamp: KnownStamp | NewStamp, tx: CardTransaction) -> None:
        for key, stamps in list(self.live.items()):
            if stamp in stamps:
                stamps.remove(stamp)
                if not stamps:
                    del self.live[key]
        collection = self.by_id[stamp.collection_id]
        collection.void()
        left = collection.unredeemed_purchases
        if isinstance(stamp, KnownStamp):
            self.plan.voids.append(Void(collection.id, stamp.id, stamp.purchase_id, tx, left))
            return
        index = self.plan.stamps.index(stamp)
        self.plan.stamps[index] = replace(stamp, voided_by=tx.id)
        self.plan.voids.append(Void(collection.id, None, stamp.purchase.purchase_id, tx, left))


def plan_batch(
    events: Sequence[tuple[CardTransaction, Sequence[str]]],
    view: LedgerView,
    programs: Mapping[str, ProgramDefinition],
) -> Plan:
    """The effects of `events` (each with the program ids it matched), applied in order."""
    planner = _Planner(view, programs)
    for tx, matched in events:
        if tx.stamps:
            planner.purchase(tx, matched)
        else:
            planner.undo(tx)
    return planner.plan
