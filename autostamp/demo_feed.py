"""The synthetic bank feed of `autostamp demo`: purchases, near misses, refunds and malformed
messages for the demo's members, drawn from a seeded generator.

Pure: the caller gives the time of each step and the run's id. The seed fixes every choice;
the run's id is in every transaction id, so a second run with the same seed sends new
transactions (the same ids again would be redeliveries, which stamp nothing).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson

from autostamp.demo_programs import Shop


class StepKind(StrEnum):
    """What one step of the feed sends."""

    PURCHASE = "purchase"
    """An auth and its clearing that qualify for the shop's program."""
    NEAR_MISS = "near miss"
    """An auth and its clearing at a program's shop that fail one of its conditions."""
    REFUND = "refund"
    """A full refund of an earlier purchase, naming it by its purchase id, auth or clearing."""
    MALFORMED = "malformed"
    """A message the worker must dead-letter: bad JSON, a missing field, a decimal amount."""


STEP_WEIGHTS = {
    StepKind.PURCHASE: 72,
    StepKind.NEAR_MISS: 15,
    StepKind.REFUND: 9,
    StepKind.MALFORMED: 4,
}
REFUNDABLE = 100
"""How many of the latest purchases a refund may name."""
UNDO_NAMES = ("purchase", "auth", "clearing")
"""Which id of its purchase each refund names, in turn."""


@dataclass(frozen=True)
class FeedMessage:
    """One message for the transactions topic, keyed by member."""

    key: bytes
    value: bytes


@dataclass(frozen=True)
class Step:
    """What one step sent: its kind and its messages (two for a purchase, else one)."""

    kind: StepKind
    messages: tuple[FeedMessage, ...]


@dataclass
class FeedTally:
    """Messages sent, and the steps behind them by kind."""

    messages: int = 0
    steps: dict[StepKind, int] = field(default_factory=lambda: dict.fromkeys(StepKind, 0))

    def add(self, step: Step) -> None:
        self.messages += len(step.messages)
        self.steps[step.kind] += 1

    def line(self) -> str:
        """`sent N: P purchases, M near misses, R refunds, X malformed`."""
        s = self.steps
        return (
            f"sent {self.messages}: {s[StepKind.PURCHASE]} purchases, "
            f"{s[StepKind.NEAR_MISS]} near misses, {s[StepKind.REFUND]} refunds, "
            f"{s[StepKind.MALFORMED]} malformed"
        )


def demo_members(count: int) -> list[str]:
    """The demo's member ids, the same on every run: `demo_member_001`, ..."""
    return [f"demo_member_{n:03d}" for n in range(1, count + 1)]


@dataclass(frozen=True)
class _Purchase:
    """A purchase a refund may name: its clearing, and the ids it may be named by."""

    clearing: Mapping[str, Any]
    names: tuple[str, str, str]  # purchase id, auth id, clearing id


class BankFeed:
    """Card transactions of `members` at `shops`, one step at a time."""

    def __init__(self, shops: Sequence[Shop], members: Sequence[str], seed: int, run: str) -> None:
        if not shops or not members:
            raise ValueError("the feed needs at least one shop and one member")
        self._shops, self._members, self._run = list(shops), list(members), run
        self._rng = random.Random(seed)
        self._made = 0
        self._refundable: list[_Purchase] = []
        self._refunds = 0
        self._malformed = 0

    def step(self, now: datetime) -> Step:
        """The next step's messages, dated `now` (which must carry its UTC offset)."""
        if now.tzinfo is None:
            raise ValueError("now must carry its UTC offset")
        kinds, weights = list(STEP_WEIGHTS), list(STEP_WEIGHTS.values())
        kind = self._rng.choices(kinds, weights)[0]
        if kind is StepKind.REFUND and not self._refundable:
            kind = StepKind.PURCHASE
        self._made += 1
        if kind is StepKind.REFUND:
            return Step(kind, (self._refund(now),))
        if kind is StepKind.MALFORMED:
            return Step(kind, (self._malformed_message(now),))
        return Step(kind, self._purchase(now, near_miss=kind is StepKind.NEAR_MISS))

    def _purchase(self, now: datetime, *, near_miss: bool) -> tuple[FeedMessage, FeedMessage]:
        shop, clearing = self._clearing(now)
        if near_miss:
            clearing |= self._rng.choice(shop.near_misses)
        purchase_id = clearing["purchase_id"]
        auth = {**clearing, "id": f"{purchase_id}_auth", "type": "auth"}
        if not near_miss:
            names = (purchase_id, auth["id"], clearing["id"])
            self._refundable = [*self._refundable[-(REFUNDABLE - 1) :], _Purchase(clearing, names)]
        return _message(auth), _message(clearing)

    def _clearing(self, now: datetime) -> tuple[Shop, dict[str, Any]]:
        """A random shop, and a clearing there that qualifies for its program."""
        shop = self._rng.choice(self._shops)
        member = self._rng.choice(self._members)
        purchase_id = f"demo_{self._run}_{self._made:07d}"
        return shop, {
            "id": f"{purchase_id}_clearing",
            "type": "clearing",
            "purchase_id": purchase_id,
            "member_id": member,
            "amount": self._rng.randint(*shop.amounts),
            "currency": "GBP",
            "merchant": dict(self._rng.choice(shop.merchants)),
            "card": self._card(member),
            "occurred_at": _timestamp(now),
        }

    def _card(self, member: str) -> dict[str, str]:
        n = self._members.index(member)
        scheme = ("visa", "mastercard")[n % 2]
        return {"id": f"card_{member}", "scheme": scheme, "last4": f"{4000 + n % 6000:04d}"}

    def _refund(self, now: datetime) -> FeedMessage:
        purchase = self._refundable.pop(self._rng.randrange(len(self._refundable)))
        named = purchase.names[self._refunds % len(UNDO_NAMES)]
        self._refunds += 1
        refund = {
            **{k: v for k, v in purchase.clearing.items() if k != "purchase_id"},
            "id": f"{purchase.names[0]}_refund",
            "type": "refund",
            "original_id": named,
            "occurred_at": _timestamp(now),
        }
        return _message(refund)

    def _malformed_message(self, now: datetime) -> FeedMessage:
        _, clearing = self._clearing(now)
        clearing["id"] = clearing["purchase_id"] = f"{clearing['purchase_id']}_malformed"
        which = self._malformed % 3
        self._malformed += 1
        if which == 0:  # not JSON: cut short
            whole = orjson.dumps(clearing)
            return FeedMessage(clearing["member_id"].encode(), whole[: len(whole) // 2])
        if which == 1:  # a required field missing
            del clearing["merchant"]
        else:  # an amount in pounds instead of an integer of pence
            clearing["amount"] = f"{clearing['amount'] / 100:.2f}"
        return _message(clearing)


def _message(body: Mapping[str, Any]) -> FeedMessage:
    return FeedMessage(str(body["member_id"]).encode(), orjson.dumps(body))


def _timestamp(now: datetime) -> str:
    # To the microsecond: a purchase sent just after enrolling must not read as before it.
    return now.isoformat(timespec="microseconds")


@dataclass
class Pace:
    """How many messages are due at `now` to keep `rate` a second since `start`.

    After a stall longer than `forgiven_s` (a slow broker, a suspended laptop), the pace
    starts again from where it is rather than sending the backlog in one burst.
    """

    rate: float
    start: float
    forgiven_s: float = 2.0

    def due(self, now: float, sent: int) -> int:
        owed = (now - self.start) * self.rate - sent
        if owed > self.rate * self.forgiven_s:
            self.start = now - sent / self.rate
            owed = 0
        return max(int(owed), 0)
