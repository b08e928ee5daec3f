"""Qualifying rules compiled into conditions: a cheap test for matching, a sentence for a miss."""

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from operator import attrgetter
from typing import NamedTuple, Protocol
from zoneinfo import ZoneInfo

from rules.programs import ProgramDefinition, ProgramStatus
from rules.qualifying import QualifyingRules
from rules.transactions import UNDOING_TYPES, CardTransaction, TransactionType

FieldReader = Callable[[CardTransaction], str | None]

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class Miss(NamedTuple):
    """The condition that turned a transaction down, and why, in words a support agent can read."""

    condition: str
    reason: str


class Condition(Protocol):
    """One test a transaction must pass; ``field`` names the rule it enforces."""

    @property
    def field(self) -> str: ...

    def holds(self, tx: CardTransaction) -> bool: ...

    def miss(self, tx: CardTransaction) -> Miss: ...


class Live:
    """The program is active and the purchase falls in its window (start inclusive)."""

    __slots__ = ("end", "start", "status")
    field = "status"

    def __init__(self, status: ProgramStatus, start: datetime | None, end: datetime | None) -> None:
        self.status, self.start, self.end = status, start, end

    def holds(self, tx: CardTransaction) -> bool:
        at = tx.occurred_at
        if self.status is not ProgramStatus.ACTIVE:
            return False
        return (self.start is None or self.start <= at) and (self.end is None or at < self.end)

    def miss(self, tx: CardTransaction) -> Miss:
        at = tx.occurred_at
        if self.status is not ProgramStatus.ACTIVE:
            return Miss("status", f"the program is {self.status}, not active")
        if self.start is not None and at < self.start:
            return Miss(
                "active_from", f"purchase at {at} is before the program starts at {self.start}"
            )
        return Miss(
            "active_until", f"purchase at {at} is not before the program ends at {self.end}"
        )


class StampsOn:
    """The transaction is of the type that stamps this program."""

    __slots__ = ("stamp_type",)
    field = "stamp_on"

    def __init__(self, stamp_type: TransactionType) -> None:
        self.stamp_type = stamp_type

    def holds(self, tx: CardTransaction) -> bool:
        return tx.type is self.stamp_type

    def miss(self, tx: CardTransaction) -> Miss:
        if tx.type in UNDOING_TYPES:
            return Miss("stamp_on", f"a {tx.type} never stamps; it can only undo a stamp")
        return Miss(
            "stamp_on", f"the program stamps on {self.stamp_type}, and this is {_a(tx.type)}"
        )


class OneOf:
    """A value of the transaction is one of those the program lists."""

    __slots__ = ("allowed", "field", "label", "read")

    def __init__(self, field: str, read: FieldReader, allowed: Iterable[str], label: str) -> None:
        self.field, self.read, self.allowed, self.label = field, read, frozenset(allowed), label

    def holds(self, tx: CardTransaction) -> bool:
        return self.read(tx) in self.allowed

    def miss(self, tx: CardTransaction) -> Miss:
        value, listing = self.read(tx), _listing(self.allowed)
        if value is None:
            return Miss(self.field, f"{self.label} is not given, and the program needs {listing}")
        return Miss(self.field, f"{self.label} {value} is not one of {listing}")


class NoneOf:
    """A value of the transaction is none of those the program excludes."""

    __slots__ = ("excluded", "field", "label", "read")

    def __init__(self, field: str, read: FieldReader, excluded: Iterable[str], label: str) -> None:
        self.field, self.read, self.excluded, self.label = field, read, frozenset(excluded), label

    def holds(self, tx: CardTransaction) -> bool:
        return self.read(tx) not in self.excluded

    def miss(self, tx: CardTransaction) -> Miss:
        return Miss(self.field, f"{self.label} {self.read(tx)} is excluded by the program")


class StartsWith:
    """A value of the transaction starts with one of the prefixes the program lists."""

    __slots__ = ("field", "label", "prefixes", "read")

    def __init__(self, field: str, read: FieldReader, prefixes: Iterable[str], label: str) -> None:
        self.field, self.read, self.prefixes, self.label = field, read, tuple(prefixes), label

    def holds(self, tx: CardTransaction) -> bool:
        value = self.read(tx)
        return value is not None and value.startswith(self.prefixes)

    def miss(self, tx: CardTransaction) -> Miss:
        value, listing = self.read(tx), _listing(self.prefixes)
        if value is None:
            return Miss(self.field, f"{self.label} is not given, and the program needs {listing}")
        return Miss(self.field, f"{self.label} {value} does not start with {listing}")


class AmountAtLeast:
    """The amount is at least the program's minimum."""

    __slots__ = ("currency", "minimum")
    field = "min_amount"

    def __init__(self, minimum: int, currency: str) -> None:
        self.minimum, self.currency = minimum, currency

    def holds(self, tx: CardTransaction) -> bool:
        return tx.amount >= self.minimum

    def miss(self, tx: CardTransaction) -> Miss:
        bound = f"the minimum of {self.minimum} ({self.currency} minor units)"
        return Miss(self.field, f"amount {tx.amount} is below {bound}")


class AmountAtMost:
    """The amount is at most the program's maximum."""

    __slots__ = ("currency", "maximum")
    field = "max_amount"

    def __init__(self, maximum: int, currency: str) -> None:
        self.maximum, self.currency = maximum, currency

    def holds(self, tx: CardTransaction) -> bool:
        return tx.amount <= self.maximum

    def miss(self, tx: CardTransaction) -> Miss:
        bound = f"the maximum of {self.maximum} ({self.currency} minor units)"
        return Miss(self.field, f"amount {tx.amount} is above {bound}")


class ClockTime:
    """The purchase falls on the listed days and hours of the program's own clock."""

    __slots__ = ("days", "hours", "zone")
    field = "days_of_week"

    def __init__(
        self, zone: ZoneInfo, days: Iterable[int] | None, hours: Iterable[int] | None
    ) -> None:
        self.zone = zone
        self.days = None if days is None else frozenset(days)
        self.hours = None if hours is None else frozenset(hours)

    def holds(self, tx: CardTransaction) -> bool:
        local = tx.occurred_at.astimezone(self.zone)
        if self.days is not None and local.isoweekday() not in self.days:
            return False
        return self.hours is None or local.hour in self.hours

    def miss(self, tx: CardTransaction) -> Miss:
        local = tx.occurred_at.astimezone(self.zone)
        when = f"{WEEKDAYS[local.weekday()]} {local:%H:%M} {self.zone.key}"
        if self.days is not None and local.isoweekday() not in self.days:
            return Miss("days_of_week", f"{when} is not on {_day_runs(self.days)}")
        return Miss("hours_of_day", f"{when} is outside the hours {_hour_runs(self.hours or ())}")


def _compact_postcode(tx: CardTransaction) -> str | None:
    postcode = tx.merchant.postcode
    return None if postcode is None else postcode.replace(" ", "").upper()


# (rule field, how to read the transaction, how a sentence names the value), in the order a
# miss is reported: where the purchase was made, then what was paid, then with which card.
_ONE_OF: tuple[tuple[str, FieldReader, str], ...] = (
    ("merchant_ids", attrgetter("merchant.id"), "merchant"),
    ("brand_ids", attrgetter("merchant.brand_id"), "merchant brand"),
    ("mccs", attrgetter("merchant.mcc"), "MCC"),
)
_NONE_OF: tuple[tuple[str, FieldReader, str], ...] = (
    ("exclude_merchant_ids", attrgetter("merchant.id"), "merchant"),
    ("exclude_mccs", attrgetter("merchant.mcc"), "MCC"),
)


def compile_conditions(program: ProgramDefinition) -> tuple[Condition, ...]:
    """Every condition the program sets, in the order a miss is reported."""
    rules = program.rules
    found: list[Condition] = []
    if program.status is not ProgramStatus.ACTIVE or program.active_from or program.active_until:
        found.append(Live(program.status, program.active_from, program.active_until))
    found.append(StampsOn(TransactionType(rules.stamp_on)))
    found.extend(_place(rules))
    found.extend(_payment(rules))
    found.extend(_card_and_location(rules))
    if rules.days_of_week is not None or rules.hours_of_day is not None:
        found.append(ClockTime(ZoneInfo(rules.timezone), rules.days_of_week, rules.hours_of_day))
    return tuple(found)


def _place(rules: QualifyingRules) -> Iterator[Condition]:
    for field, read, label in _ONE_OF:
        if (values := getattr(rules, field)) is not None:
            yield OneOf(field, read, values, label)
    for field, read, label in _NONE_OF:
        if (values := getattr(rules, field)) is not None:
            yield NoneOf(field, read, values, label)


def _payment(rules: QualifyingRules) -> Iterator[Condition]:
    if rules.currencies is not None:
        yield OneOf("currencies", attrgetter("currency"), rules.currencies, "currency")
    # Validation guarantees a single currency whenever an amount bound is set.
    currency = rules.currencies[0] if rules.currencies else ""
    if rules.min_amount is not None:
        yield AmountAtLeast(rules.min_amount, currency)
    if rules.max_amount is not None:
        yield AmountAtMost(rules.max_amount, currency)


def _card_and_location(rules: QualifyingRules) -> Iterator[Condition]:
    if rules.card_schemes is not None:
        yield OneOf("card_schemes", attrgetter("card.scheme"), rules.card_schemes, "card scheme")
    if rules.bin_prefixes is not None:
        yield StartsWith("bin_prefixes", attrgetter("card.bin"), rules.bin_prefixes, "card BIN")
    if rules.merchant_countries is not None:
        read = attrgetter("merchant.country")
        yield OneOf("merchant_countries", read, rules.merchant_countries, "merchant country")
    if rules.merchant_postcodes is not None:
        prefixes = rules.merchant_postcodes
        yield StartsWith("merchant_postcodes", _compact_postcode, prefixes, "merchant postcode")


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _listing(values: Iterable[str], shown: int = 6) -> str:
    ordered = sorted(values)
    listed = ", ".join(ordered[:shown])
    return listed if len(ordered) <= shown else f"{listed} and {len(ordered) - shown} more"


def _runs(values: Iterable[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for value in sorted(values):
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _day_runs(days: Iterable[int]) -> str:
    names = [
        WEEKDAYS[first - 1] + ("" if first == last else f"-{WEEKDAYS[last - 1]}")
        for first, last in _runs(days)
    ]
    return ", ".join(names)


def _hour_runs(hours: Iterable[int]) -> str:
    return ", ".join(f"{first:02d}:00-{last:02d}:59" for first, last in _runs(hours))
