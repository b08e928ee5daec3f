"""Hypothesis strategies for what banks really send: purchases as auth and clearing pairs,
lone clearings and lone auths, refunds and reversals naming any id of a purchase (or an id
that never arrives), partial refunds, several programs on one merchant, daily caps across
time-zone days; then each event delivered one to three times, in any order, in any batches;
and between the batches, adjustments by support staff (additions that complete cycles,
deductions beyond the count, retries of one idempotency key).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from ledger.memory import Enrollment
from rules import CardTransaction, ProgramDefinition
from rules.samples import sample_program

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning
MERCHANTS = ("mer_a", "mer_b", "mer_c")
MEMBERS = ("m1", "m2")
ZONES = ("UTC", "Europe/London", "Pacific/Auckland", "America/Los_Angeles")


@dataclass(frozen=True)
class AdjustmentStep:
    """An adjustment made after batch `after` (0: before the first), under `key`."""

    after: int
    collection_id: str
    delta: int
    key: str


@dataclass(frozen=True)
class Scenario:
    """Programs, enrollments, and the distinct events of a history."""

    programs: dict[str, ProgramDefinition]
    enrollments: tuple[Enrollment, ...]
    events: tuple[CardTransaction, ...]


def program(
    id: str,
    threshold: int = 3,
    reward: dict[str, Any] | None = None,
    merchants: tuple[str, ...] = ("mer_a",),
    **rules: Any,
) -> ProgramDefinition:
    """A valid program stamping purchases at `merchants`, changed by `rules`."""
    rules = {"merchant_ids": list(merchants), **rules}
    return ProgramDefinition.model_validate(
        sample_program(id, threshold=threshold, reward=reward, rules=rules)
    )


def transaction(
    id: str,
    type: str = "clearing",
    member: str = "m1",
    amount: int = 450,
    at: datetime | None = None,
    merchant: str = "mer_a",
    currency: str = "GBP",
    **extra: Any,
) -> CardTransaction:
    return CardTransaction.model_validate(
        {
            "id": id,
            "type": type,
            "member_id": member,
            "amount": amount,
            "currency": currency,
            "merchant": {"id": merchant, "name": "Shop", "mcc": "5814"},
            "card": {"id": "card_1", "scheme": "visa"},
            "occurred_at": (at or T0 + timedelta(hours=1)).isoformat(),
            **extra,
        }
    )


_STAMP_ON = st.sampled_from(["clearing", "clearing", "auth"])
_ZONE = st.sampled_from(ZONES)
_PARTIAL = st.sampled_from(["void", "keep"])
_REWARD = st.sampled_from(
    [
        {"type": "refund"},
        {"type": "refund", "max_amount": 300, "currency": "GBP"},
        {"type": "fixed-reward", "amount": 500, "currency": "GBP"},
    ]
)
_THRESHOLD = st.one_of(st.integers(1, 4), st.integers(1, 10))
_PROGRAM_MERCHANTS = st.lists(st.sampled_from(MERCHANTS), min_size=1, max_size=2, unique=True)
_ENROLLED_HOURS = st.sampled_from([-1, -1, -1, -1, 2, 20])  # mostly before the purchases
_MEMBER = st.sampled_from(MEMBERS)
_MERCHANT = st.sampled_from(["mer_a", "mer_a", "mer_b", "mer_c"])
_HOUR = st.integers(0, 40)  # two days or so: caps meet across time-zone days
_AMOUNT = st.sampled_from([150, 250, 450, 1000])
_CURRENCY = st.sampled_from(["GBP", "GBP", "GBP", "EUR"])
_FORM = st.sampled_from(["pair", "pair", "clearing", "clearing_own_id", "auth"])
_TIP = st.sampled_from([0, 0, 50])
_UNDO_COUNT = st.sampled_from([0, 0, 1, 1, 2])
_UNDO_TYPE = st.sampled_from(["refund", "reversal"])
_PART = st.sampled_from([1, 1, 2])  # the whole amount, or half of it


@st.composite
def programs(draw: st.DrawFn) -> dict[str, ProgramDefinition]:
    found = {}
    for n in range(draw(st.integers(1, 3))):
        rules: dict[str, Any] = {
            "stamp_on": draw(_STAMP_ON),
            "timezone": draw(_ZONE),
            "partial_refunds": draw(_PARTIAL),
        }
        if draw(st.booleans()):
            rules["daily_cap_per_member"] = draw(st.integers(1, 2))
        reward = draw(_REWARD)
        if "max_amount" in reward or draw(st.integers(0, 3)) == 0:
            rules["currencies"] = ["GBP"]
            if draw(st.booleans()):
                rules["min_amount"] = 200
        merchants = tuple(draw(_PROGRAM_MERCHANTS))
        found[f"lp_{n}"] = program(f"lp_{n}", draw(_THRESHOLD), reward, merchants, **rules)
    return found


@st.composite
def enrollments(draw: st.DrawFn, programs: dict[str, ProgramDefinition]) -> tuple[Enrollment, ...]:
    found = []
    for member in MEMBERS:
        for program_id in programs:
            if draw(st.integers(0, 5)):
                at = T0 + timedelta(hours=draw(_ENROLLED_HOURS))
                found.append(Enrollment(f"sc_{program_id}_{member}", program_id, member, at))
    return tuple(found)


@st.composite
def purchase(draw: st.DrawFn, n: int) -> list[CardTransaction]:
    """The events of purchase `p{n}`: auth and clearing, a lone clearing, or a lone auth."""
    common = {
        "member": draw(_MEMBER),
        "merchant": draw(_MERCHANT),
        "currency": draw(_CURRENCY),
        "at": T0 + timedelta(hours=draw(_HOUR)),
    }
    amount, form = draw(_AMOUNT), draw(_FORM)
    if form == "clearing_own_id":
        return [transaction(f"p{n}", "clearing", amount=amount, **common)]
    events = []
    if form in ("pair", "auth"):
        events.append(transaction(f"a{n}", "auth", amount=amount, purchase_id=f"p{n}", **common))
    if form in ("pair", "clearing"):
        cleared = amount + draw(_TIP)
        events.append(
            transaction(f"c{n}", "clearing", amount=cleared, purchase_id=f"p{n}", **common)
        )
    return events


@st.composite
def undos(draw: st.DrawFn, n: int, events: list[CardTransaction]) -> list[CardTransaction]:
    """Zero to two refunds or reversals of purchase `p{n}`, each naming any of its ids (or an
    id of it that is never sent)."""
    first, names = events[0], st.sampled_from([f"p{n}", f"a{n}", f"c{n}"])
    full = max(e.amount for e in events)
    return [
        transaction(
            f"u{n}_{k}",
            draw(_UNDO_TYPE),
            member=first.member_id,
            amount=full // draw(_PART),
            currency=first.currency,
            merchant=first.merchant.id,
            at=first.occurred_at + timedelta(hours=1),
            original_id=draw(names),
        )
        for k in range(draw(_UNDO_COUNT))
    ]


@st.composite
def scenarios(draw: st.DrawFn, max_purchases: int = 8) -> Scenario:
    drawn = draw(programs())
    events: list[CardTransaction] = []
    for n in range(draw(st.integers(1, max_purchases))):
        bought = draw(purchase(n))
        events += bought + draw(undos(n, bought))
    if draw(st.integers(0, 5)) == 0:
        events.append(transaction("u_stray", "refund", original_id="never_sent"))
    return Scenario(drawn, draw(enrollments(drawn)), tuple(events))


@st.composite
def deliveries(draw: st.DrawFn, events: tuple[CardTransaction, ...]) -> list[list[CardTransaction]]:
    """Each event one to three times, in any order, cut into batches anywhere."""
    copies = draw(
        st.lists(st.sampled_from([1, 1, 2, 3]), min_size=len(events), max_size=len(events))
    )
    sent = [e for e, n in zip(events, copies, strict=True) for _ in range(n)]
    shuffled = draw(st.permutations(sent))
    cuts = draw(st.sets(st.integers(1, max(1, len(shuffled) - 1)), max_size=6))
    bounds = [0, *sorted(c for c in cuts if c < len(shuffled)), len(shuffled)]
    return [list(shuffled[a:b]) for a, b in itertools.pairwise(bounds) if b > a]


_DELTA = st.sampled_from([1, 1, 2, 3, 5, -1, -1, -2, -4, 12])


@st.composite
def adjustments(
    draw: st.DrawFn, enrollments: tuple[Enrollment, ...], batches: int
) -> list[AdjustmentStep]:
    """Zero to four adjustments of enrolled collections between batches; some are retries."""
    if not enrollments:
        return []
    steps: list[AdjustmentStep] = []
    for n in range(draw(st.sampled_from([0, 1, 2, 3, 4]))):
        after = draw(st.integers(0, batches))
        if steps and draw(st.integers(0, 3)) == 0:
            steps.append(replace(draw(st.sampled_from(steps)), after=after))  # a retry
            continue
        collection = draw(st.sampled_from(enrollments)).collection_id
        steps.append(AdjustmentStep(after, collection, draw(_DELTA), f"k{n}"))
    return sorted(steps, key=lambda s: s.after)


def distinct(batches: list[list[CardTransaction]]) -> list[CardTransaction]:
    """The arrival order of the distinct events: what the model replays."""
    seen: dict[str, CardTransaction] = {}
    for batch in batches:
        for event in batch:
            seen.setdefault(event.id, event)
    return list(seen.values())


def describe(
    scenario: Scenario,
    batches: list[list[CardTransaction]],
    steps: list[AdjustmentStep] = [],  # noqa: B006 (never changed)
) -> str:
    """A history in a few lines, for a person reading a failure."""
    lines = []
    for p in scenario.programs.values():
        r = p.rules
        terms = p.reward_config.model_dump(exclude_none=True)
        extras = f"cap {r.daily_cap_per_member}/day {r.timezone}" if r.daily_cap_per_member else ""
        lines.append(
            f"{p.id}: threshold {p.qualifying_threshold}, stamps on {r.stamp_on}, {terms}, "
            f"merchants {','.join(r.merchant_ids or ())}, partial refunds {r.partial_refunds}"
            f"{', min ' + str(r.min_amount) if r.min_amount else ''} {extras}"
        )
    for e in scenario.enrollments:
        lines.append(f"{e.member_id} enrolled in {e.program_id} at T0{_hours(e.enrolled_at)}")
    for n, batch in enumerate(batches):
        for step in (s for s in steps if s.after == n):
            lines.append(f"adjust {step.collection_id} by {step.delta:+d} under {step.key}")
        lines.append(f"batch {n}: " + "; ".join(_event(tx) for tx in batch))
    for step in (s for s in steps if s.after == len(batches)):
        lines.append(f"adjust {step.collection_id} by {step.delta:+d} under {step.key}")
    return "\n".join(lines)


def _hours(moment: datetime) -> str:
    hours = int((moment - T0).total_seconds() // 3600)
    return f"{hours:+d}h"


def _event(tx: CardTransaction) -> str:
    target = f" of {tx.original_id}" if tx.original_id else f" ({tx.purchase_id})"
    return (
        f"{tx.id} {tx.type}{target} {tx.member_id} {tx.amount} {tx.currency} "
        f"{tx.merchant.id} T0{_hours(tx.occurred_at)}"
    )
