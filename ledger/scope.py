"""The part of the ledger a batch can touch: which collections to lock, which rows to read.

Every store (PostgreSQL, or the in-memory one of the tests) reads a `LedgerView` through
these keys, in this order, so what the planner sees does not depend on the store:

1. lock the collections of `lock_keys`;
2. read the purchase events of `name_keys` (and every event of the purchases they name);
3. read the undos and stamps of `purchase_keys`;
4. count the live stamps, and read the capped ones, of the days in `day_keys`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ledger.batch import Incoming
from ledger.domain import StampStatus, local_day
from ledger.model import CollectionView, DayKey, PurchaseEventRow, StampRow
from rules import ProgramDefinition


@dataclass(frozen=True)
class LockKeys:
    """The collections a batch locks, in id order."""

    # (program, member) of each qualifying purchase event: where it may stamp.
    pairs: frozenset[tuple[str, str]]
    # (member, purchase_id) of each such event: collections already holding a stamp of the
    # purchase, which its arrival may void (it can link an undo that named it first).
    purchases: frozenset[tuple[str, str]]
    # Members with an undo in the batch: every one of their collections.
    members: frozenset[str]

    def __bool__(self) -> bool:
        return bool(self.pairs or self.purchases or self.members)


@dataclass(frozen=True)
class PurchaseKeys:
    """The purchases a batch touches, every (member, id) they go by, the batch's undo ids."""

    purchases: frozenset[str]
    names: frozenset[tuple[str, str]]
    undo_ids: frozenset[tuple[str, str]]  # (member, id): ids are the member's


def _remembered(item: Incoming) -> bool:
    """Whether a purchase event is remembered as part of its purchase."""
    return bool(item.qualifying) or item.related


def _relevant(incoming: Iterable[Incoming]) -> list[Incoming]:
    """The events that can change anything: remembered purchase events, and every undo."""
    return [item for item in incoming if not item.tx.is_purchase or _remembered(item)]


def lock_keys(incoming: Sequence[Incoming]) -> LockKeys:
    """What a batch locks: a second worker holding the same events during a rebalance waits
    on these rows for the first to commit. A member's events are on one partition (the topic
    is keyed by member), so no other worker applies *other* events of the member meanwhile."""
    purchases = [item for item in incoming if item.tx.is_purchase and _remembered(item)]
    return LockKeys(
        pairs=frozenset((p, item.tx.member_id) for item in purchases for p in item.qualifying),
        purchases=frozenset((item.tx.member_id, item.tx.purchase_id) for item in purchases),
        members=frozenset(item.tx.member_id for item in incoming if not item.tx.is_purchase),
    )


def name_keys(incoming: Sequence[Incoming]) -> frozenset[tuple[str, str]]:
    """(member, id) for every id the batch's events go by or name: an event's own id and
    purchase id, an undo's original id."""
    names: set[tuple[str, str]] = set()
    for item in _relevant(incoming):
        tx = item.tx
        ids = (tx.original_id,) if tx.original_id else (tx.id, tx.purchase_id)
        names.update((tx.member_id, name) for name in ids)
    return frozenset(names)


def purchase_keys(
    incoming: Sequence[Incoming], purchase_events: Iterable[PurchaseEventRow]
) -> PurchaseKeys:
    relevant = _relevant(incoming)
    known = list(purchase_events)
    names = set(name_keys(incoming))
    names |= {(e.member_id, e.id) for e in known} | {(e.member_id, e.purchase_id) for e in known}
    purchases = {item.tx.purchase_id for item in relevant if item.tx.is_purchase}
    purchases |= {item.tx.original_id for item in relevant if item.tx.original_id}
    return PurchaseKeys(
        purchases=frozenset(purchases | {e.purchase_id for e in known}),
        names=frozenset(names),
        undo_ids=frozenset(
            (item.tx.member_id, item.tx.id) for item in relevant if not item.tx.is_purchase
        ),
    )


def day_keys(
    incoming: Sequence[Incoming],
    collections: Iterable[CollectionView],
    stamps: Iterable[StampRow],
    programs: Mapping[str, ProgramDefinition],
) -> set[DayKey]:
    """The (collection, day) pairs of capped programs that the batch may stamp or void on."""
    by_pair = {(c.program_id, c.member_id): c.id for c in collections if c.stamping}
    program_of = {c.id: programs[c.program_id] for c in collections}
    days: set[DayKey] = set()
    for item in incoming:
        tx = item.tx
        for program_id in item.qualifying:
            program, cid = programs[program_id], by_pair.get((program_id, tx.member_id))
            if cid is not None and program.rules.daily_cap_per_member is not None:
                days.add((cid, local_day(program, tx.occurred_at)))
    for stamp in stamps:
        owner = program_of.get(stamp.collection_id)
        if owner is None or owner.rules.daily_cap_per_member is None:
            continue
        if stamp.status is StampStatus.LIVE:
            days.add((stamp.collection_id, local_day(owner, stamp.occurred_at)))
    return days
