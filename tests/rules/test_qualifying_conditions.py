"""Each qualifying condition, at its boundaries: which purchases stamp and which miss, and why.

The default transaction is a 450 GBP clearing at merchant mer_soho (brand brand_bean, MCC 5814,
GB, W1D 3QF) with a visa card of BIN 41234567, at 08:15 UTC on Tuesday 11 March 2025.
"""

from typing import Any

import pytest

from rules import Matcher, explain_program
from tests.rules.conditions import GBP, LONDON, ProgramBuilder, TxBuilder, at, case

CASES = [
    case("no conditions stamp any clearing", {}, None),
    case("listed merchant", {"merchant_ids": ["mer_other", "mer_soho"]}, None),
    case("unlisted merchant", {"merchant_ids": ["mer_other"]}, "merchant_ids"),
    case("listed brand", {"brand_ids": ["brand_bean"]}, None),
    case("unlisted brand", {"brand_ids": ["brand_tea"]}, "brand_ids"),
    case(
        "no brand given",
        {"brand_ids": ["brand_bean"]},
        "brand_ids",
        {"merchant": {"brand_id": None}},
    ),
    case("listed mcc", {"mccs": ["5812", "5814"]}, None),
    case("unlisted mcc", {"mccs": ["5411"]}, "mccs"),
    case("merchant and mcc both hold", {"merchant_ids": ["mer_soho"], "mccs": ["5814"]}, None),
    case(
        "merchant holds but mcc does not", {"merchant_ids": ["mer_soho"], "mccs": ["5411"]}, "mccs"
    ),
    case(
        "brand holds but merchant does not",
        {"merchant_ids": ["m2"], "brand_ids": ["brand_bean"]},
        "merchant_ids",
    ),
    case(
        "excluded merchant wins over its brand",
        {"brand_ids": ["brand_bean"], "exclude_merchant_ids": ["mer_soho"]},
        "exclude_merchant_ids",
    ),
    case(
        "excluded mcc wins over a listed merchant",
        {"merchant_ids": ["mer_soho"], "exclude_mccs": ["5814"]},
        "exclude_mccs",
    ),
    case("another merchant excluded", {"mccs": ["5814"], "exclude_merchant_ids": ["mer_x"]}, None),
    case("exclusion alone", {"exclude_mccs": ["5411"]}, None),
    case("amount equal to the minimum", {"min_amount": 450, **GBP}, None),
    case("amount one below the minimum", {"min_amount": 451, **GBP}, "min_amount"),
    case("amount equal to the maximum", {"max_amount": 450, **GBP}, None),
    case("amount one above the maximum", {"max_amount": 449, **GBP}, "max_amount"),
    case("amount inside both bounds", {"min_amount": 450, "max_amount": 450, **GBP}, None),
    case("listed currency", GBP, None),
    case("other currency", {"currencies": ["EUR"]}, "currencies"),
    case(
        "other currency before the amount",
        {"min_amount": 1, **GBP},
        "currencies",
        {"currency": "EUR"},
    ),
    case("listed scheme", {"card_schemes": ["mastercard", "visa"]}, None),
    case("unlisted scheme", {"card_schemes": ["amex"]}, "card_schemes"),
    case("6-digit prefix of an 8-digit BIN", {"bin_prefixes": ["412345"]}, None),
    case("8-digit prefix equal to the BIN", {"bin_prefixes": ["41234567"]}, None),
    case(
        "8-digit prefix differing in the last digit", {"bin_prefixes": ["41234568"]}, "bin_prefixes"
    ),
    case("1-digit prefix", {"bin_prefixes": ["5", "4"]}, None),
    case(
        "BIN shorter than the prefix",
        {"bin_prefixes": ["41234567"]},
        "bin_prefixes",
        {"card": {"bin": "412345"}},
    ),
    case(
        "6-digit prefix of a 6-digit BIN",
        {"bin_prefixes": ["412345"]},
        None,
        {"card": {"bin": "412345"}},
    ),
    case("no BIN given", {"bin_prefixes": ["4"]}, "bin_prefixes", {"card": {"bin": None}}),
    case("listed country", {"merchant_countries": ["IE", "GB"]}, None),
    case("other country", {"merchant_countries": ["FR"]}, "merchant_countries"),
    case(
        "no country given",
        {"merchant_countries": ["GB"]},
        "merchant_countries",
        {"merchant": {"country": None}},
    ),
    case("postcode prefix", {"merchant_postcodes": ["W1D"]}, None),
    case("postcode prefix ignores case and spaces", {"merchant_postcodes": ["w1d 3"]}, None),
    case("other postcode", {"merchant_postcodes": ["EC1"]}, "merchant_postcodes"),
    case(
        "no postcode given",
        {"merchant_postcodes": ["W1"]},
        "merchant_postcodes",
        {"merchant": {"postcode": None}},
    ),
    case("listed weekday", {"days_of_week": [2], **LONDON}, None),
    case("other weekdays", {"days_of_week": [1, 3, 4, 5, 6, 7], **LONDON}, "days_of_week"),
    case(
        "Sunday night in UTC is Monday morning in Tokyo",
        {"days_of_week": [1], "timezone": "Asia/Tokyo"},
        None,
        at("2025-03-09T23:30:00Z"),
    ),
    case(
        "Sunday night in UTC is not Monday",
        {"days_of_week": [1]},
        "days_of_week",
        at("2025-03-09T23:30:00Z"),
    ),
    case(
        "first minute of the first hour",
        {"hours_of_day": [7, 8, 9, 10, 11], **LONDON},
        None,
        at("2025-03-11T07:00:00Z"),
    ),
    case(
        "last second before the first hour",
        {"hours_of_day": [7, 8, 9, 10, 11], **LONDON},
        "hours_of_day",
        at("2025-03-11T06:59:59Z"),
    ),
    case(
        "last minute of the last hour",
        {"hours_of_day": [7, 8, 9, 10, 11], **LONDON},
        None,
        at("2025-03-11T11:59:59Z"),
    ),
    case(
        "first minute after the last hour",
        {"hours_of_day": [7, 8, 9, 10, 11], **LONDON},
        "hours_of_day",
        at("2025-03-11T12:00:00Z"),
    ),
    case(
        "06:30 UTC is 07:30 in a London summer",
        {"hours_of_day": [7], **LONDON},
        None,
        at("2025-06-10T06:30:00Z"),
    ),
    case(
        "06:30 UTC is not hour 7 in UTC",
        {"hours_of_day": [7]},
        "hours_of_day",
        at("2025-06-10T06:30:00Z"),
    ),
    case(
        "06:30 UTC is 02:30 in New York summer",
        {"hours_of_day": [2], "timezone": "America/New_York"},
        None,
        at("2025-06-10T06:30:00Z"),
    ),
    case(
        "offset of the transaction does not matter",
        {"hours_of_day": [8], **LONDON},
        None,
        at("2025-03-11T09:15:00+01:00"),
    ),
    case(
        "spring forward: 00:59 UTC is still hour 0 in London",
        {"hours_of_day": [0], **LONDON},
        None,
        at("2025-03-30T00:59:00Z"),
    ),
    case(
        "spring forward: 01:30 UTC is 02:30 BST",
        {"hours_of_day": [2], **LONDON},
        None,
        at("2025-03-30T01:30:00Z"),
    ),
    case(
        "spring forward: hour 1 never happens in London",
        {"hours_of_day": [1], **LONDON},
        "hours_of_day",
        at("2025-03-30T01:30:00Z"),
    ),
    case(
        "fall back: 00:30 UTC is the first 01:30 (BST)",
        {"hours_of_day": [1], **LONDON},
        None,
        at("2025-10-26T00:30:00Z"),
    ),
    case(
        "fall back: 01:30 UTC is the second 01:30 (GMT)",
        {"hours_of_day": [1], **LONDON},
        None,
        at("2025-10-26T01:30:00Z"),
    ),
    case(
        "fall back: 02:30 UTC is hour 2 again",
        {"hours_of_day": [1], **LONDON},
        "hours_of_day",
        at("2025-10-26T02:30:00Z"),
    ),
    case(
        "day holds but hour does not",
        {"days_of_week": [2], "hours_of_day": [20], **LONDON},
        "hours_of_day",
    ),
    case("clearing stamps by default", {}, None, {"type": "clearing"}),
    case("auth does not stamp by default", {}, "stamp_on", {"type": "auth"}),
    case("auth stamps an auth program", {"stamp_on": "auth"}, None, {"type": "auth"}),
    case("clearing does not stamp an auth program", {"stamp_on": "auth"}, "stamp_on"),
    case("refund never stamps", {}, "stamp_on", {"type": "refund", "original_id": "txn_0"}),
    case(
        "reversal never stamps",
        {"stamp_on": "auth"},
        "stamp_on",
        {"type": "reversal", "original_id": "t"},
    ),
    case(
        "purchase at the start of the window",
        {},
        None,
        program={"active_from": "2025-03-11T08:15:00Z"},
    ),
    case(
        "purchase a second before the window",
        {},
        "active_from",
        program={"active_from": "2025-03-11T08:15:01Z"},
    ),
    case(
        "purchase at the end of the window",
        {},
        "active_until",
        program={"active_until": "2025-03-11T08:15:00Z"},
    ),
    case(
        "purchase a second before the end",
        {},
        None,
        program={"active_until": "2025-03-11T08:15:01Z"},
    ),
    case(
        "window bounds in other offsets",
        {},
        None,
        program={
            "active_from": "2025-03-11T09:15:00+01:00",
            "active_until": "2025-03-11T04:16:00-04:00",
        },
    ),
    case("paused program", {}, "status", program={"status": "paused"}),
    case("archived program", {}, "status", program={"status": "archived"}),
    case(
        "status is reported before the window",
        {},
        "status",
        program={"status": "paused", "active_until": "2025-01-01T00:00:00Z"},
    ),
]


@pytest.mark.parametrize(("rules", "tx_changes", "program_changes", "failing"), CASES)
def test_a_purchase_qualifies_only_when_every_condition_holds(
    make_tx: TxBuilder,
    make_program: ProgramBuilder,
    rules: dict[str, Any],
    tx_changes: dict[str, Any],
    program_changes: dict[str, Any],
    failing: str | None,
) -> None:
    program = make_program(rules, **program_changes)
    tx = make_tx(**tx_changes)

    decision = explain_program(program, tx)

    assert (decision.matched, decision.condition) == (failing is None, failing)
    assert Matcher([program]).match(tx) == ([program] if failing is None else [])
