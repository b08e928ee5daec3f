"""The qualifying rules of a program: which card purchases earn a stamp."""

import re
from enum import StrEnum
from typing import Annotated, Self, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, model_validator

from rules.errors import FieldProblem
from rules.fields import BinPrefix, CardScheme, Country, Currency, Identifier, Mcc, Postcode
from rules.transactions import MAX_AMOUNT

T = TypeVar("T")


def _distinct(values: tuple[T, ...]) -> tuple[T, ...]:
    # An empty "any of" list would match nothing; it is almost always a mistake.
    if not values:
        raise ValueError("must list at least one value (leave the field out to allow any)")
    return tuple(dict.fromkeys(values))


def _compact_postcode(value: str) -> str:
    return value.replace(" ", "").upper()


# Checked before zoneinfo sees the name, which it would otherwise look up as a file path.
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+)*")


def _zone(name: str) -> str:
    problem = f"{name[:40]!r} is not a known IANA time zone (such as Europe/London)"
    if len(name) > 64 or _ZONE_NAME.fullmatch(name) is None:
        raise ValueError(problem)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(problem) from None
    return name


AnyOf = Annotated[tuple[T, ...], AfterValidator(_distinct)]
Amount = Annotated[StrictInt, Field(gt=0, le=MAX_AMOUNT)]
Weekday = Annotated[StrictInt, Field(ge=1, le=7)]
Hour = Annotated[StrictInt, Field(ge=0, le=23)]
PostcodePrefix = Annotated[Postcode, AfterValidator(_compact_postcode)]
TimeZoneName = Annotated[str, AfterValidator(_zone)]


class StampOn(StrEnum):
    """The transaction type that stamps: the settled clearing, or the earlier authorisation."""

    CLEARING = "clearing"
    AUTH = "auth"


class PartialRefunds(StrEnum):
    """What a refund of less than the purchase amount does to the purchase's stamp."""

    VOID = "void"
    KEEP = "keep"


class QualifyingRules(BaseModel):
    """Conditions a purchase must all meet to stamp; each is optional and each list means any of.

    ``merchant_postcodes`` match by prefix, compared upper-case without spaces (``SW1`` takes
    ``SW1A 1AA`` and also ``SW19 2AB``); ``bin_prefixes`` match the start of the card's BIN, and a
    card whose BIN is shorter than the prefix does not match. ``days_of_week`` are ISO numbers
    (1 is Monday, 7 is Sunday) and ``hours_of_day`` whole hours 0-23 (7 means 07:00-07:59), both
    read on the clock of ``timezone``. ``min_amount`` and ``max_amount`` are inclusive, in minor
    units of the single currency the rules must then name.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    merchant_ids: AnyOf[Identifier] | None = None
    brand_ids: AnyOf[Identifier] | None = None
    mccs: AnyOf[Mcc] | None = None
    exclude_merchant_ids: AnyOf[Identifier] | None = None
    exclude_mccs: AnyOf[Mcc] | None = None
    min_amount: Amount | None = None
    max_amount: Amount | None = None
    currencies: AnyOf[Currency] | None = None
    card_schemes: AnyOf[CardScheme] | None = None
    bin_prefixes: AnyOf[BinPrefix] | None = None
    merchant_countries: AnyOf[Country] | None = None
    merchant_postcodes: AnyOf[PostcodePrefix] | None = None
    days_of_week: AnyOf[Weekday] | None = None
    hours_of_day: AnyOf[Hour] | None = None
    timezone: TimeZoneName = "UTC"
    stamp_on: StampOn = StampOn.CLEARING
    # Carried for the ledger, which counts a member's stamps per day; matching ignores it.
    daily_cap_per_member: Annotated[StrictInt, Field(ge=1)] | None = None
    # Carried for the ledger too: whether a partial refund voids the stamp (refunds that add
    # up to the purchase amount always do).
    partial_refunds: PartialRefunds = PartialRefunds.VOID

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        self._amounts_are_consistent()
        _refuse_overlap("exclude_merchant_ids", self.exclude_merchant_ids, self.merchant_ids)
        _refuse_overlap("exclude_mccs", self.exclude_mccs, self.mccs)
        return self

    def _amounts_are_consistent(self) -> None:
        named = "min_amount" if self.min_amount is not None else "max_amount"
        if self.min_amount is None and self.max_amount is None:
            return
        if self.currencies is None or len(self.currencies) != 1:
            raise FieldProblem(
                named, "needs currencies to name exactly one currency, whose minor units it counts"
            )
        low, high = self.min_amount, self.max_amount
        if low is not None and high is not None and low > high:
            raise FieldProblem("min_amount", f"{low} is above max_amount {high}")


def _refuse_overlap(
    field: str, excluded: tuple[str, ...] | None, included: tuple[str, ...] | None
) -> None:
    both = sorted(set(excluded or ()) & set(included or ()))
    if both:
        included_field = field.removeprefix("exclude_")
        raise FieldProblem(field, f"{', '.join(both)} also in {included_field}; pick one")
