"""The ledger's rows as the pure core sees them, and the plan of what a batch changes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from ledger.batch import BatchOutcome, Incoming
from ledger.domain import StampStatus, Tally, UndoFact
from ledger.events import EVENT_TYPES, OutboxEvent

StampKey = tuple[str, str]  # (collection_id, purchase_id)
DayKey = tuple[str, date]  # (collection_id, local day)


@dataclass(frozen=True, slots=True)
class CollectionView:
    """A member's collection in a program, with its count.

    An unenrolled collection (`stamping` false) is never stamped; undos still void its stamps.
    """

    id: str
    program_id: str
    member_id: str
    enrolled_at: datetime
    tally: Tally
    stamping: bool = True


@dataclass(frozen=True, slots=True)
class StampRow:
    """One purchase's stamp on one collection, as stored; `id` is None until it is written."""

    collection_id: str
    purchase_id: str
    transaction_id: str
    cycle: int
    amount: int
    currency: str
    merchant_id: str
    merchant_name: str
    occurred_at: datetime
    status: StampStatus
    void_transaction_id: str | None = None
    id: int | None = None

    @property
    def key(self) -> StampKey:
        return (self.collection_id, self.purchase_id)


@dataclass(frozen=True, slots=True)
class PurchaseEventRow:
    """A remembered stamping event: the purchase its id belongs to, and when it happened
    (None only for rows remembered before the time was kept)."""

    id: str
    purchase_id: str
    member_id: str
    occurred_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LedgerView:
    """What the ledger holds about a batch, read under the locks of its collections.

    `stamps` holds the stamps of the batch's purchases and the capped stamps of the days in
    `day_live`, which counts the live stamps of every (collection, day) the batch may touch.
    """

    collections: tuple[CollectionView, ...] = ()
    stamps: tuple[StampRow, ...] = ()
    purchase_events: tuple[PurchaseEventRow, ...] = ()
    undos: tuple[UndoFact, ...] = ()
    day_live: Mapping[DayKey, int] = field(default_factory=dict)
    # The webhook event types some endpoint subscribes to: the plan announces only those.
    announce: frozenset[str] = frozenset(EVENT_TYPES)


@dataclass(frozen=True, slots=True)
class NewReward:
    """A reward for one completed cycle; `stamps_used` is the threshold it consumed."""

    id: str
    collection_id: str
    cycle: int
    type: str
    amount: int
    currency: str
    transaction_id: str | None  # None: a cycle an edit completed with nothing to pay back
    purchase_id: str | None
    stamps_used: int
    program_version: int | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything one batch changes, to be written in one database transaction."""

    purchase_events: tuple[Incoming, ...] = ()
    undos: tuple[Incoming, ...] = ()
    new_stamps: tuple[StampRow, ...] = ()
    changed_stamps: tuple[StampRow, ...] = ()
    collections: tuple[CollectionView, ...] = ()
    rewards: tuple[NewReward, ...] = ()
    events: tuple[OutboxEvent, ...] = ()
    outcome: BatchOutcome = field(default_factory=BatchOutcome)
