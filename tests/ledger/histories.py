"""Hypothesis strategies for what banks really send: purchases as auth and clearing pairs,
lone clearings and lone auths, refunds and reversals naming any id of a purchase (or an id
that never arrives), partial refunds, several programs on one merchant, daily caps across
time-zone days; then each event delivered one to three times, in any order, in any batches;
and between the batches, adjustments by support staff (additions that complete cycles,
deductions beyond the count, retries of one idempotency key).

`histories` adds what the contract's money rules are about: auths that fail a condition their
clearing meets (a tip across a minimum, an hour boundary between them), split shipments whose
second clearing comes a day later, the other member's purchases under the same ids; and, between
the batches, program edits of every field, unenrollments and enrollments again, and erasures,
each followed by later events of earlier purchases.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

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
def purchase(draw: st.DrawFn, n: int, member: str | None = None) -> list[CardTransaction]:
    """The events of purchase `p{n}`: auth and clearing, a lone clearing, or a lone auth."""
    common = {
        "member": member or draw(_MEMBER),
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
    ids = [f"p{n}", f"a{n}", f"c{n}"]
    first, names = events[0], st.sampled_from(ids + [e.id for e in events if e.id not in ids])
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


# Histories of the contract: remembered events, reused ids, and steps between the batches.


@dataclass(frozen=True)
class EditStep:
    """A program definition sent after batch `after`: the next version, or a replayed one."""

    after: int
    definition: ProgramDefinition


@dataclass(frozen=True)
class UnenrollStep:
    after: int
    collection_id: str


@dataclass(frozen=True)
class EnrollStep:
    after: int
    enrollment: Enrollment


@dataclass(frozen=True)
class EraseStep:
    after: int
    member_id: str


Step = AdjustmentStep | EditStep | UnenrollStep | EnrollStep | EraseStep
LIFECYCLE = (UnenrollStep, EnrollStep, EraseStep)


@dataclass(frozen=True, repr=False)
class History:
    """A scenario delivered in batches, with the steps taken between them."""

    scenario: Scenario
    batches: list[list[CardTransaction]]
    steps: list[Step]

    def __repr__(self) -> str:
        # A failing example is read from `describe_history`, which a test notes.
        return f"History({len(self.batches)} batches, {len(self.steps)} steps)"

    def steps_after(self, n: int) -> list[Step]:
        """The steps taken after batch `n` (0: before the first), in order."""
        return [s for s in self.steps if s.after == n]


MINIMUMS = (200, 2000)
# Tuesday and Wednesday: after every enrollment, and still inside the purchases' two days.
BOUNDARY_DAYS = (date(2026, 3, 3), date(2026, 3, 4))


@st.composite
def contract_programs(draw: st.DrawFn) -> dict[str, ProgramDefinition]:
    """The programs of `programs`, some with a minimum amount and some with hours of day."""
    found = {}
    for program_id, drawn in draw(programs()).items():
        data = drawn.model_dump(mode="json")
        rules = data["rules"]
        if draw(st.integers(0, 2)) == 0:
            rules["currencies"], rules["min_amount"] = ["GBP"], draw(st.sampled_from(MINIMUMS))
        if rules["daily_cap_per_member"] is not None and draw(st.booleans()):
            rules["daily_cap_per_member"] = draw(st.integers(2, 3))  # room to lower it
        if draw(st.integers(0, 2)) == 0:
            start = draw(st.integers(6, 12))
            rules["hours_of_day"] = list(range(start, start + draw(st.integers(4, 11))))
        found[program_id] = ProgramDefinition.model_validate(data)
    return found


def hour_boundaries(program: ProgramDefinition) -> list[datetime]:
    """The instants at which the program's hours of day start or stop holding."""
    hours = set(program.rules.hours_of_day or ())
    zone = ZoneInfo(program.rules.timezone)
    return [
        datetime.combine(day, time(hour), zone).astimezone(UTC)
        for day in BOUNDARY_DAYS
        for hour in range(24)
        if (hour in hours) != ((hour - 1) % 24 in hours)
    ]


_CONTRACT_FORM = st.sampled_from(["drawn", "drawn", "drawn", "split", "tipped", "straddle"])


@st.composite
def contract_purchase(
    draw: st.DrawFn, n: int, programs: dict[str, ProgramDefinition], member: str | None = None
) -> list[CardTransaction]:
    """The events of purchase `p{n}`: as `purchase` draws them, or a split shipment (a second
    clearing `c{n}b` a day later), or an auth and clearing either side of a program's
    minimum amount (a tip) or of a boundary of its hours of day."""
    form = draw(_CONTRACT_FORM)
    member = member or draw(_MEMBER)
    with_minimum = [p for p in programs.values() if p.rules.min_amount is not None]
    with_hours = [p for p in programs.values() if p.rules.hours_of_day is not None]
    if form == "tipped" and with_minimum:
        chosen = draw(st.sampled_from(with_minimum))
        minimum, at = chosen.rules.min_amount or 0, T0 + timedelta(hours=draw(_HOUR))
        auth_amount = minimum - draw(st.integers(1, min(100, minimum - 1)))
        return _auth_and_clearing(
            draw, n, member, chosen, (auth_amount, at), (minimum + draw(st.integers(0, 100)), at)
        )
    if form == "straddle" and with_hours:
        chosen = draw(st.sampled_from(with_hours))
        boundary = draw(st.sampled_from(hour_boundaries(chosen)))
        amount = draw(_AMOUNT) + (chosen.rules.min_amount or 0)
        auth_at = boundary - timedelta(minutes=draw(st.integers(1, 5)))
        clearing_at = boundary + timedelta(minutes=draw(st.integers(1, 5)))
        return _auth_and_clearing(draw, n, member, chosen, (amount, auth_at), (amount, clearing_at))
    events = draw(purchase(n, member))
    if form == "split" and events[-1].type == "clearing":
        first = events[-1]
        later = first.occurred_at + timedelta(hours=draw(st.integers(20, 30)))
        second = first.model_copy(
            update={"id": f"c{n}b", "amount": max(1, first.amount // 2), "occurred_at": later}
        )
        events.append(second)
    return events


def _auth_and_clearing(
    draw: st.DrawFn,
    n: int,
    member: str,
    program: ProgramDefinition,
    auth: tuple[int, datetime],
    clearing: tuple[int, datetime],
) -> list[CardTransaction]:
    common = {
        "member": member,
        "merchant": draw(st.sampled_from(program.rules.merchant_ids or MERCHANTS)),
        "currency": "GBP",
        "purchase_id": f"p{n}",
    }
    return [
        transaction(f"a{n}", "auth", amount=auth[0], at=auth[1], **common),
        transaction(f"c{n}", "clearing", amount=clearing[0], at=clearing[1], **common),
    ]


def is_second_clearing(tx: CardTransaction) -> bool:
    """Whether the event is the later clearing of a split shipment (`contract_purchase`)."""
    return tx.type == "clearing" and tx.id == f"c{tx.purchase_id[1:]}b"


EDIT_KINDS = (
    "threshold up",
    "threshold down",
    "refund to fixed",
    "fixed to refund",
    "cap added",
    "cap raised",
    "cap lowered",
    "cap removed",
    "time zone",
    "partial refunds",
    "paused",
    "resumed",
)


def _edits_for(definition: ProgramDefinition) -> dict[str, list[str]]:
    """The changes an edit of `definition` can make, by the field they change."""
    cap = definition.rules.daily_cap_per_member
    refund = definition.reward_config.type == "refund"
    found = {
        "threshold": ["threshold up"]
        + (["threshold down"] if definition.qualifying_threshold > 1 else []),
        "reward": ["refund to fixed" if refund else "fixed to refund"],
        "cap": ["cap added"]
        if cap is None
        else ["cap raised", "cap removed"] + (["cap lowered"] * 2 if cap > 1 else []),
        "timezone": ["time zone"],
        "partial_refunds": ["partial refunds"],
    }
    if definition.status != "archived":
        found["status"] = ["paused" if definition.status == "active" else "resumed"]
    return found


@st.composite
def edit(draw: st.DrawFn, definition: ProgramDefinition) -> ProgramDefinition:
    """The next version of `definition`, with one or two of its fields changed."""
    if definition.status == "paused" and draw(st.booleans()):
        kinds = ["resumed"]
    else:
        # A field first, then how it changes, so that rarer changes come up as often.
        changes = _edits_for(definition)
        fields = draw(
            st.lists(st.sampled_from(sorted(changes)), min_size=1, max_size=2, unique=True)
        )
        kinds = [draw(st.sampled_from(changes[field])) for field in fields]
    data = definition.model_dump(mode="json")
    rules, threshold, cap = (
        data["rules"],
        definition.qualifying_threshold,
        definition.rules.daily_cap_per_member,
    )
    for kind in kinds:
        if kind == "threshold up":
            data["qualifying_threshold"] = threshold + draw(st.integers(1, 3))
        elif kind == "threshold down":
            data["qualifying_threshold"] = draw(st.integers(1, threshold - 1))
        elif kind == "refund to fixed":
            data["reward_config"] = {"type": "fixed-reward", "amount": 500, "currency": "GBP"}
        elif kind == "fixed to refund":
            capped = rules["currencies"] == ["GBP"] and draw(st.booleans())
            data["reward_config"] = (
                {"type": "refund", "max_amount": 300, "currency": "GBP"}
                if capped
                else {"type": "refund"}
            )
        elif kind == "cap added":
            rules["daily_cap_per_member"] = draw(st.integers(1, 2))
        elif kind == "cap raised":
            rules["daily_cap_per_member"] = (cap or 0) + draw(st.integers(1, 2))
        elif kind == "cap lowered":
            rules["daily_cap_per_member"] = draw(st.integers(1, (cap or 2) - 1))
        elif kind == "cap removed":
            rules["daily_cap_per_member"] = None
        elif kind == "time zone":
            rules["timezone"] = draw(st.sampled_from([z for z in ZONES if z != rules["timezone"]]))
        elif kind == "partial refunds":
            rules["partial_refunds"] = "keep" if rules["partial_refunds"] == "void" else "void"
        elif kind == "paused":
            data["status"] = draw(st.sampled_from(["paused", "paused", "paused", "archived"]))
        elif kind == "resumed":
            data["status"] = "active"
    data["version"] = definition.version + 1
    return ProgramDefinition.model_validate(data)


@st.composite
def edits(draw: st.DrawFn, programs: dict[str, ProgramDefinition], batches: int) -> list[EditStep]:
    """Zero to six edits between the batches, each the next version of its program; now and
    then an older version sent again, or the held version with other content."""
    held = dict(programs)
    sent: dict[str, list[ProgramDefinition]] = {p: [d] for p, d in programs.items()}
    steps = []
    count = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6]))
    for after in sorted(draw(st.integers(0, batches)) for _ in range(count)):
        paused = [p for p, d in held.items() if d.status == "paused"]
        program_id = draw(st.sampled_from(paused or sorted(held)))
        replay = draw(st.integers(0, 9))
        if replay == 0 and len(sent[program_id]) > 1:
            steps.append(EditStep(after, draw(st.sampled_from(sent[program_id][:-1]))))
            continue
        changed = draw(edit(held[program_id]))
        if replay == 1:
            # The held version number with other content: refused, never applied.
            stale = changed.model_copy(update={"version": held[program_id].version})
            steps.append(EditStep(after, stale))
            continue
        held[program_id] = changed
        sent[program_id].append(changed)
        steps.append(EditStep(after, changed))
    return steps


def edit_kinds(before: ProgramDefinition, after: ProgramDefinition) -> set[str]:
    """What an edit changed, in the words of `EDIT_KINDS`."""
    if after.version <= before.version:
        return {"stale replay"}
    found = set()
    if after.qualifying_threshold != before.qualifying_threshold:
        up = after.qualifying_threshold > before.qualifying_threshold
        found.add("threshold up" if up else "threshold down")
    if after.reward_config.type != before.reward_config.type:
        found.add(
            "refund to fixed" if after.reward_config.type == "fixed-reward" else "fixed to refund"
        )
    old, new = before.rules.daily_cap_per_member, after.rules.daily_cap_per_member
    if old != new:
        if old is None or new is None:
            found.add("cap added" if old is None else "cap removed")
        else:
            found.add("cap raised" if new > old else "cap lowered")
    if after.rules.timezone != before.rules.timezone:
        found.add("time zone")
    if after.rules.partial_refunds != before.rules.partial_refunds:
        found.add("partial refunds")
    if after.status != before.status:
        found.add("paused" if before.status == "active" else "resumed")
    return found


def _other(member: str) -> str:
    return MEMBERS[1 - MEMBERS.index(member)]


@st.composite
def histories(draw: st.DrawFn, max_purchases: int = 8) -> History:
    """A contract history: its events in batches, and edits, adjustments, unenrollments,
    enrollments and erasures between them. Later events of earlier purchases (a second
    clearing, refunds after an erasure, redeliveries) come in batches after those steps."""
    drawn = draw(contract_programs())
    enrolled = draw(enrollments(drawn))
    events: list[CardTransaction] = []
    for n in range(draw(st.integers(1, max_purchases))):
        bought = draw(contract_purchase(n, drawn))
        events += bought + draw(undos(n, bought))
        if draw(st.integers(0, 5)) == 0:
            # The other member's purchase under the same ids, from another bank.
            twin = draw(contract_purchase(n, drawn, _other(bought[0].member_id)))
            events += twin + draw(undos(n, twin))
    if draw(st.integers(0, 5)) == 0:
        events.append(transaction("u_stray", "refund", original_id="never_sent"))

    late: list[CardTransaction] = []
    again: tuple[Enrollment, Enrollment] | None = None
    if enrolled and draw(st.integers(0, 1)) == 0:
        old = draw(st.sampled_from(enrolled))
        at = T0 + timedelta(hours=draw(st.integers(2, 30)))
        seconds = [e for e in events if is_second_clearing(e)]
        if seconds and draw(st.integers(0, 2)):
            # Enrolled again between the two clearings of a split shipment of the member's.
            second = draw(st.sampled_from(seconds))
            old = draw(
                st.sampled_from([e for e in enrolled if e.member_id == second.member_id] or [old])
            )
            at = second.occurred_at - timedelta(hours=draw(st.integers(1, 19)))
        again = (old, Enrollment(f"{old.collection_id}_again", old.program_id, old.member_id, at))
        split = {e.purchase_id for e in events if is_second_clearing(e)}
        for e in events:
            if e.member_id != old.member_id or e.purchase_id not in split:
                continue
            # The second clearing after the new enrollment; now and then the first as well.
            if is_second_clearing(e) or (e.type == "clearing" and draw(st.integers(0, 2)) == 0):
                late.append(e)
    early = [e for e in events if e not in late]
    erased: str | None = None
    bought_early = [e for e in early if e.is_purchase]
    if bought_early and draw(st.integers(0, 1)) == 0:
        erased = draw(st.sampled_from(sorted({e.member_id for e in bought_early})))
        theirs = [e for e in bought_early if e.member_id == erased]
        for k in range(draw(st.integers(1, 2))):
            named = draw(st.sampled_from(theirs))
            late.append(
                transaction(
                    f"z{k}",
                    draw(_UNDO_TYPE),
                    member=erased,
                    amount=max(1, named.amount // draw(_PART)),
                    currency=named.currency,
                    merchant=named.merchant.id,
                    at=named.occurred_at + timedelta(hours=2),
                    original_id=draw(st.sampled_from([named.id, named.purchase_id])),
                )
            )
        if draw(st.booleans()):
            late.append(
                transaction("q_after", "clearing", member=erased, merchant=theirs[0].merchant.id)
            )
    redelivered = draw(st.booleans())
    if early and redelivered:
        late += draw(st.lists(st.sampled_from(early), max_size=3))  # redeliveries, after the steps

    batches = draw(deliveries(tuple(early)))
    boundary = len(batches)
    if late:
        batches += draw(deliveries(tuple(late)))
    lifecycle: list[Step] = []
    if again is not None:
        at_step = draw(st.integers(min(1, boundary), boundary))
        lifecycle += [UnenrollStep(at_step, again[0].collection_id), EnrollStep(at_step, again[1])]
    if erased is not None:
        # An erasure unenrolls every collection, so no enrollment of the member comes after it.
        first = max(
            (
                s.after
                for s in lifecycle
                if isinstance(s, EnrollStep) and s.enrollment.member_id == erased
            ),
            default=min(1, boundary),
        )
        lifecycle.append(EraseStep(draw(st.integers(first, max(first, boundary))), erased))
    adjusted = draw(_live_adjustments(enrolled, lifecycle, len(batches)))
    edited = draw(edits(drawn, len(batches)))
    steps = sorted(
        [*adjusted, *edited, *lifecycle], key=lambda s: (s.after, isinstance(s, LIFECYCLE))
    )
    return History(Scenario(drawn, enrolled, tuple(events)), batches, steps)


def live_collections(
    enrolled: Iterable[Enrollment], lifecycle: Iterable[Step], after: int
) -> dict[str, Enrollment]:
    """The collections live for a step after batch `after`, which precedes the unenrollments,
    enrollments and erasures of that moment."""
    live = {e.collection_id: e for e in enrolled}
    for step in lifecycle:
        if step.after >= after:
            continue
        if isinstance(step, UnenrollStep):
            live.pop(step.collection_id, None)
        elif isinstance(step, EnrollStep):
            live[step.enrollment.collection_id] = step.enrollment
        elif isinstance(step, EraseStep):
            live = {c: e for c, e in live.items() if e.member_id != step.member_id}
    return live


@st.composite
def _live_adjustments(
    draw: st.DrawFn, enrolled: tuple[Enrollment, ...], lifecycle: list[Step], batches: int
) -> list[AdjustmentStep]:
    """Like `adjustments`, of the collections live at the time; some are retries."""
    steps: list[AdjustmentStep] = []
    for n in range(draw(st.sampled_from([0, 1, 2, 3, 4]))):
        after = draw(st.integers(0, batches))
        live = live_collections(enrolled, lifecycle, after)
        if steps and draw(st.integers(0, 3)) == 0:
            retried = draw(st.sampled_from(steps))
            if retried.collection_id in live:
                steps.append(replace(retried, after=after))
            continue
        if live:
            collection = draw(st.sampled_from(sorted(live)))
            steps.append(AdjustmentStep(after, collection, draw(_DELTA), f"k{n}"))
    return steps


HISTORY_KINDS = (
    "auth below a minimum its clearing meets",
    "auth and clearing across an hour boundary",
    "refund of an earlier purchase after an erasure",
    "ids reused across members",
    "second clearing after enrolling again",
    *(f"edit: {kind}" for kind in (*EDIT_KINDS, "stale replay")),
)


def history_kinds(history: History) -> set[str]:
    """Which of `HISTORY_KINDS` the history holds, read from its events and steps."""
    found: set[str] = set()
    sent = distinct(history.batches)
    definitions = list(history.scenario.programs.values()) + [
        s.definition for s in history.steps if isinstance(s, EditStep)
    ]
    for events in _purchases(sent).values():
        auths = [e for e in events if e.type == "auth"]
        clearings = [e for e in events if e.type == "clearing"]
        for program in definitions:
            if events[0].merchant.id not in (program.rules.merchant_ids or ()):
                continue
            low = program.rules.min_amount
            if low and any(a.amount < low <= c.amount for a in auths for c in clearings):
                found.add(HISTORY_KINDS[0])
            if program.rules.hours_of_day and any(
                _in_hours(program, a) != _in_hours(program, c) for a in auths for c in clearings
            ):
                found.add(HISTORY_KINDS[1])
    ids = {m: {(e.id, e.purchase_id) for e in sent if e.member_id == m} for m in MEMBERS}
    if {i for i, _ in ids[MEMBERS[0]]} & {i for i, _ in ids[MEMBERS[1]]}:
        found.add(HISTORY_KINDS[3])
    for step in history.steps:
        before = distinct(history.batches[: step.after])
        later = distinct(history.batches[step.after :])
        if isinstance(step, EraseStep):
            earlier = {
                n
                for e in before
                if e.member_id == step.member_id and e.is_purchase
                for n in (e.id, e.purchase_id)
            }
            if any(
                e.type == "refund" and e.member_id == step.member_id and e.original_id in earlier
                for e in later
            ):
                found.add(HISTORY_KINDS[2])
        if isinstance(step, EnrollStep):
            member, since = step.enrollment.member_id, step.enrollment.enrolled_at
            mine = _purchases([e for e in sent if e.member_id == member])
            for e in later:
                if e.member_id != member or e.type != "clearing":
                    continue
                bought = mine[(member, e.purchase_id)]
                first = min(x.occurred_at for x in bought)
                if first < since <= e.occurred_at and any(
                    x.type == "clearing" and x.occurred_at < e.occurred_at for x in bought
                ):
                    found.add(HISTORY_KINDS[4])
    held = dict(history.scenario.programs)
    for step in history.steps:
        if isinstance(step, EditStep):
            found |= {f"edit: {k}" for k in edit_kinds(held[step.definition.id], step.definition)}
            if step.definition.version > held[step.definition.id].version:
                held[step.definition.id] = step.definition
    return found


def _purchases(events: list[CardTransaction]) -> dict[tuple[str, str], list[CardTransaction]]:
    found: dict[tuple[str, str], list[CardTransaction]] = {}
    for e in events:
        if e.is_purchase:
            found.setdefault((e.member_id, e.purchase_id), []).append(e)
    return found


def _in_hours(program: ProgramDefinition, tx: CardTransaction) -> bool:
    local = tx.occurred_at.astimezone(ZoneInfo(program.rules.timezone))
    return local.hour in (program.rules.hours_of_day or ())


def distinct(batches: list[list[CardTransaction]]) -> list[CardTransaction]:
    """The arrival order of the distinct events: what the model replays. Every id is the
    member's, so two members' events under one id are two events."""
    seen: dict[tuple[str, str], CardTransaction] = {}
    for batch in batches:
        for event in batch:
            seen.setdefault((event.member_id, event.id), event)
    return list(seen.values())


def describe(
    scenario: Scenario,
    batches: list[list[CardTransaction]],
    steps: list[AdjustmentStep] | list[Step] = [],  # noqa: B006 (never changed)
) -> str:
    """A history in a few lines, for a person reading a failure."""
    lines = [_program(p) for p in scenario.programs.values()]
    for e in scenario.enrollments:
        lines.append(f"{e.member_id} enrolled in {e.program_id} at T0{_hours(e.enrolled_at)}")
    for n, batch in enumerate(batches):
        lines += [_step(s) for s in steps if s.after == n]
        lines.append(f"batch {n}: " + "; ".join(_event(tx) for tx in batch))
    lines += [_step(s) for s in steps if s.after == len(batches)]
    return "\n".join(lines)


def describe_history(history: History) -> str:
    return describe(history.scenario, history.batches, history.steps)


def _program(p: ProgramDefinition) -> str:
    r = p.rules
    terms = p.reward_config.model_dump(exclude_none=True)
    extras = f"cap {r.daily_cap_per_member}/day " if r.daily_cap_per_member else ""
    hours = f", hours {min(r.hours_of_day)}-{max(r.hours_of_day)}" if r.hours_of_day else ""
    status = f", {p.status}" if p.status != "active" else ""
    return (
        f"{p.id} v{p.version}: threshold {p.qualifying_threshold}, stamps on {r.stamp_on}, "
        f"{terms}, merchants {','.join(r.merchant_ids or ())}, partial refunds "
        f"{r.partial_refunds}{', min ' + str(r.min_amount) if r.min_amount else ''}{hours} "
        f"{extras}{r.timezone}{status}"
    )


def _step(step: Step) -> str:
    if isinstance(step, AdjustmentStep):
        return f"adjust {step.collection_id} by {step.delta:+d} under {step.key}"
    if isinstance(step, EditStep):
        return "edit " + _program(step.definition)
    if isinstance(step, UnenrollStep):
        return f"unenroll {step.collection_id}"
    if isinstance(step, EnrollStep):
        e = step.enrollment
        at = _hours(e.enrolled_at)
        return f"enroll {e.collection_id}: {e.member_id} in {e.program_id} at T0{at}"
    return f"erase {step.member_id}"


def _hours(moment: datetime) -> str:
    minutes = int((moment - T0).total_seconds() // 60)
    hours, rest = divmod(abs(minutes), 60)
    return f"{'-' if minutes < 0 else '+'}{hours}h" + (f"{rest:02d}m" if rest else "")


def _event(tx: CardTransaction) -> str:
    target = f" of {tx.original_id}" if tx.original_id else f" ({tx.purchase_id})"
    return (
        f"{tx.id} {tx.type}{target} {tx.member_id} {tx.amount} {tx.currency} "
        f"{tx.merchant.id} T0{_hours(tx.occurred_at)}"
    )
