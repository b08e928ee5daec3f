"""Field types shared by transactions and programs, each refusing bad input with a plain reason."""

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BeforeValidator

from rules.currencies import ISO_4217_CODES

# Anything with 13 to 19 digits in a row (spaces or dashes allowed between them) could be a
# primary account number; refusing it keeps card numbers out of the stream and the database.
_PAN = re.compile(r"[0-9](?:[ -]?[0-9]){12,18}")


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")


def _text(max_length: int) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        if len(value) > max_length:
            raise ValueError(f"must be at most {max_length} characters")
        return value

    return check


def _pattern(regex: str, expected: str) -> Callable[[str], str]:
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if compiled.fullmatch(value) is None:
            raise ValueError(f"{_shown(value)} is not {expected}")
        return value

    return check


def _currency(value: str) -> str:
    if value not in ISO_4217_CODES:
        raise ValueError(f"{_shown(value)} is not an ISO 4217 currency code such as GBP")
    return value


def _not_a_card_number(value: str) -> str:
    if _PAN.search(value):
        raise ValueError("looks like a full card number; send a token or card reference instead")
    return value


def _date_time_text(value: object) -> object:
    # Without this, pydantic would read a bare number as a Unix timestamp.
    if not isinstance(value, str | datetime):
        raise ValueError("must be an RFC 3339 date-time with a UTC offset")
    return value


def _in_utc(value: datetime) -> datetime:
    # One shared tzinfo makes comparisons between instants ten times cheaper, which the
    # matcher's active-window checks feel; local clocks come from each program's time zone.
    return value.astimezone(UTC)


Identifier = Annotated[str, AfterValidator(_text(200))]
Name = Annotated[str, AfterValidator(_text(500))]
LongText = Annotated[str, AfterValidator(_text(20_000))]
Currency = Annotated[str, AfterValidator(_currency)]
Mcc = Annotated[str, AfterValidator(_pattern("[0-9]{4}", "a 4-digit merchant category code"))]
Country = Annotated[
    str, AfterValidator(_pattern("[A-Z]{2}", "an upper-case ISO 3166 alpha-2 country code"))
]
Postcode = Annotated[str, AfterValidator(_text(16))]
CardScheme = Annotated[
    str, AfterValidator(_pattern("[a-z][a-z0-9_-]{1,31}", "a lower-case card scheme such as visa"))
]
Bin = Annotated[str, AfterValidator(_pattern("[0-9]{6,8}", "a BIN of 6 to 8 digits"))]
BinPrefix = Annotated[str, AfterValidator(_pattern("[0-9]{1,8}", "a BIN prefix of 1 to 8 digits"))]
Last4 = Annotated[str, AfterValidator(_pattern("[0-9]{4}", "the last 4 digits of a card"))]
CardId = Annotated[str, AfterValidator(_text(200)), AfterValidator(_not_a_card_number)]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_date_time_text), AfterValidator(_in_utc)]
