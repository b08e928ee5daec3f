"""What a batch of the transactions topic holds, and what applying it did: plain values.

The decoder builds `Source` and `Rejected`; the stamping use case takes `Incoming` events and
returns a `BatchOutcome`. Nothing here does I/O, so both sides import it freely.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

from rules import CardTransaction


@dataclass(frozen=True, slots=True)
class Source:
    """Where a message came from; `item` is its place inside a batch message, or -1."""

    topic: str
    partition: int
    offset: int
    item: int = -1


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message that failed validation: it goes to the dead letters, bytes and reason kept."""

    source: Source
    key: bytes | None
    value: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class Incoming:
    """A valid transaction event and the active programs it qualifies for (whatever the type).

    `related`: the event belongs to a purchase some active program may count, meeting every
    condition of one but those the events of a purchase may meet differently (amount, time):
    the ledger remembers it as part of its purchase even when it qualifies for nothing.
    """

    tx: CardTransaction
    qualifying: tuple[str, ...]
    source: Source
    related: bool = False


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What one batch did; every valid event is exactly one of applied, repeated or unmatched.

    So for any run, `events consumed == applied + repeated + unmatched + dead_lettered`.
    """

    applied: int = 0
    repeated: int = 0
    unmatched: int = 0
    dead_lettered: int = 0
    stamps: int = 0
    voids: int = 0
    rewards: int = 0
    waiting_undos: int = 0

    @property
    def events(self) -> int:
        return self.applied + self.repeated + self.unmatched + self.dead_lettered

    def __add__(self, other: BatchOutcome) -> BatchOutcome:
        return BatchOutcome(
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(BatchOutcome))
        )


def total(outcomes: Iterable[BatchOutcome]) -> BatchOutcome:
    """The sum of several outcomes."""
    result = BatchOutcome()
    for outcome in outcomes:
        result += outcome
    return result
