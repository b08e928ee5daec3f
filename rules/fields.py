"""Field types shared by transactions and programs, each refusing bad input with a plain reason."""

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, StringConstraints

from rules.currencies import ISO_4217_CODES

# Anything with 13 to 19 digits in a row (spaces or dashes allowed between them) could be a
# primary account number; refusing it keeps card numbers out of the stream and the database.
_PAN = re.compile(r"[0-9](?:[ -]?[0-9]){12,18}")


def shown(value: str) -> str:
    """A value as a refusal quotes it: short, and cut after 40 characters."""
    return repr(value if len(value) <= 40 else value[:37] + "...")


def _currency(value: str) -> str:
    if value not in ISO_4217_CODES:
        raise ValueError(f"{shown(value)} is not an ISO 4217 currency code such as GBP")
    return value


def _not_a_card_number(value: str) -> str:
    if _PAN.search(value):
        raise ValueError("looks like a full card number; send a token or card reference instead")
    return value


# RFC 3339's date-time: seconds and an offset required. A lax datetime would also read a
# number or a string of digits as unix seconds ("72" is 1970), and a time without an offset.
RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _date_time_text(value: object) -> object:
    if isinstance(value, datetime) or (isinstance(value, str) and RFC3339.fullmatch(value)):
        return value
    raise ValueError(
        "must be an RFC 3339 date-time with a UTC offset, such as 2025-01-01T00:00:00Z"
    )


def _in_utc(value: datetime) -> datetime:
    # One shared tzinfo makes comparisons between instants ten times cheaper, which the
    # matcher's active-window checks feel; local clocks come from each program's time zone.
    return value.astimezone(UTC)


# Checked by pydantic-core itself (no Python call per field: the worker validates every
# transaction of the feed); `rules.errors` words each refusal from its pattern.
NO_NUL = r"^[^\x00]*$"
PATTERNS = {
    NO_NUL: "",  # "must not contain NUL characters": the value is not shown
    r"^[0-9]{4}$": "a 4-digit merchant category code",
    r"^[A-Z]{2}$": "an upper-case ISO 3166 alpha-2 country code",
    r"^[a-z][a-z0-9_-]{1,31}$": "a lower-case card scheme such as visa",
    r"^[0-9]{6,8}$": "a BIN of 6 to 8 digits",
    r"^[0-9]{1,8}$": "a BIN prefix of 1 to 8 digits",
    # The same shape as an MCC, told apart by its spelling (\z and $ agree on one line).
    r"^[0-9]{4}\z": "the last 4 digits of a card",
}


def _text(max_length: int) -> StringConstraints:
    return StringConstraints(min_length=1, max_length=max_length, pattern=NO_NUL)


def _shaped(pattern: str) -> StringConstraints:
    assert pattern in PATTERNS
    return StringConstraints(pattern=pattern)


Identifier = Annotated[str, _text(200)]
Name = Annotated[str, _text(500)]
LongText = Annotated[str, _text(20_000)]
Currency = Annotated[str, AfterValidator(_currency)]
Mcc = Annotated[str, _shaped(r"^[0-9]{4}$")]
Country = Annotated[str, _shaped(r"^[A-Z]{2}$")]
Postcode = Annotated[str, _text(16)]
CardScheme = Annotated[str, _shaped(r"^[a-z][a-z0-9_-]{1,31}$")]
Bin = Annotated[str, _shaped(r"^[0-9]{6,8}$")]
BinPrefix = Annotated[str, _shaped(r"^[0-9]{1,8}$")]
Last4 = Annotated[str, _shaped(r"^[0-9]{4}\z")]
CardId = Annotated[str, _text(200), AfterValidator(_not_a_card_number)]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_date_time_text), AfterValidator(_in_utc)]
