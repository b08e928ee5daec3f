"""What the pipeline state machine's examples are made of: programs by role, the shapes of
purchases and undos, and the terms a purchase is paid on."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from rules import CardTransaction
from tests.ledger.histories import T0, transaction

# Each example's programs, by role; the example's prefix names them and their merchants.
PROGRAMS: dict[str, dict[str, Any]] = {
    "a": {"threshold": 3, "merchants": ("a",)},  # stamps on clearing, refunds the purchase
    "b": {
        "threshold": 2,
        "merchants": ("b",),
        "reward": {"type": "fixed-reward", "amount": 500, "currency": "GBP"},
        "stamp_on": "auth",
        "partial_refunds": "keep",
    },
    "c": {  # shares merchant a with program a; one stamp a day, in Auckland
        "threshold": 4,
        "merchants": ("a", "c"),
        "daily_cap_per_member": 1,
        "timezone": "Pacific/Auckland",
    },
}
MEMBERS = ("m1", "m2", "m3")
MERCHANTS = ("a", "b", "c", "d")  # d: no program's, unless an edit makes it so
MAX_THRESHOLD = 6  # raised thresholds still complete cycles within an example

PROGRAM = st.sampled_from(sorted(PROGRAMS))
MEMBER = st.sampled_from(["m1", "m1", "m2", "m3"])  # m1 buys most: more cycles complete
MERCHANT = st.sampled_from(MERCHANTS)
AMOUNT = st.sampled_from([150, 450, 1000])
TIP = st.sampled_from([0, 0, 50])  # a clearing may be above its auth
FORM = st.sampled_from(["pair", "pair", "clearing", "clearing_own_id", "auth"])
UNDO = st.tuples(
    st.sampled_from(["purchase", "auth", "clearing"]),  # the id it names
    st.sampled_from(["refund", "reversal"]),
    st.sampled_from([1, 1, 2]),  # the whole amount, or half of it
)
UNDOS = st.sampled_from([0, 0, 0, 1, 2])  # of a new purchase; the undo step adds more
HOURS = st.sampled_from([1, 3, 7, 20])  # between purchases: some days meet the cap, some not


@dataclass(frozen=True)
class Purchase:
    """The ids and terms of one purchase, for the steps that name it later."""

    member: str
    purchase_id: str
    auth: str | None
    clearing: str | None
    amount: int
    merchant: str
    at: datetime


class Till:
    """Rings up one example's purchases and undos: ids under its prefix, each later than the
    last, kept for the steps that name them later."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self.clock, self.numbers = prefix, T0, itertools.count()
        self.purchases: list[Purchase] = []
        self.authorised: list[Purchase] = []  # lone auths, for a later step to clear

    def merchant(self, key: str) -> str:
        return f"{self.prefix}_mer_{key}"

    def purchase(self, data: st.DataObject) -> list[CardTransaction]:
        """A new purchase, later than the last: its events and zero to two undos naming it."""
        self.clock += timedelta(hours=data.draw(HOURS))
        n, form = next(self.numbers), data.draw(FORM)
        own_id = form == "clearing_own_id"  # a lone clearing whose id is the purchase id
        bought = Purchase(
            member=f"{self.prefix}_{data.draw(MEMBER)}",
            purchase_id=f"{self.prefix}_p{n}",
            auth=None if own_id else f"{self.prefix}_a{n}",
            clearing=f"{self.prefix}_p{n}" if own_id else f"{self.prefix}_c{n}",
            amount=data.draw(AMOUNT),
            merchant=self.merchant(data.draw(MERCHANT)),
            at=self.clock,
        )
        self.purchases.append(bought)
        events = []
        if bought.auth is not None and form != "clearing":
            events.append(self.event(bought, bought.auth, "auth", bought.amount))
        if form == "auth":
            self.authorised.append(bought)
        elif bought.clearing is not None:
            amount = bought.amount + data.draw(TIP)
            events.append(self.event(bought, bought.clearing, "clearing", amount))
        undos = [data.draw(UNDO) for _ in range(data.draw(UNDOS, label="undos"))]
        return events + [self.undo(bought, *undo) for undo in undos]

    def second_shipment(self, bought: Purchase, hours: int) -> CardTransaction:
        """Another clearing of an earlier purchase, later: a split shipment's second part."""
        self.clock += timedelta(hours=hours)
        at = self.clock
        return transaction(
            f"{self.prefix}_s{next(self.numbers)}",
            "clearing",
            bought.member,
            bought.amount,
            at,
            bought.merchant,
            purchase_id=bought.purchase_id,
        )

    def under_their_ids(self, bought: Purchase, member: str, hours: int) -> list[CardTransaction]:
        """Another member's purchase that a second bank sends under the ids of `bought`."""
        self.clock += timedelta(hours=hours)
        other = Purchase(
            member,
            bought.purchase_id,
            bought.auth,
            bought.clearing,
            bought.amount,
            bought.merchant,
            self.clock,
        )
        self.purchases.append(other)
        events = [self.event(other, other.auth, "auth", other.amount)] if other.auth else []
        assert other.clearing is not None
        return [*events, self.event(other, other.clearing, "clearing", other.amount)]

    def event(self, bought: Purchase, id: str, type: str, amount: int) -> CardTransaction:
        extra = {} if id == bought.purchase_id else {"purchase_id": bought.purchase_id}
        return transaction(id, type, bought.member, amount, bought.at, bought.merchant, **extra)

    def undo(self, bought: Purchase, names: str, kind: str, part: int) -> CardTransaction:
        ids = {"purchase": bought.purchase_id, "auth": bought.auth, "clearing": bought.clearing}
        return transaction(
            f"{self.prefix}_u{next(self.numbers)}",
            kind,
            bought.member,
            bought.amount // part,
            bought.at + timedelta(minutes=30),
            bought.merchant,
            original_id=ids[names] or bought.purchase_id,
        )


def describe(event: CardTransaction) -> str:
    """An event in one line, for the steps Hypothesis prints."""
    names = f"undoes {event.original_id}" if event.original_id else f"of {event.purchase_id}"
    return (
        f"{event.id}: {event.type} {names} by {event.member_id} "
        f"at {event.merchant.id} {event.amount} {event.occurred_at:%d %H:%M}"
    )
