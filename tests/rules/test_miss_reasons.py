"""Why a purchase missed a program, in words a support agent can read to a member.

The default transaction is a 450 GBP clearing at merchant mer_soho (brand brand_bean, MCC 5814,
GB, W1D 3QF) with a visa card of BIN 41234567, at 08:15 UTC on Tuesday 11 March 2025.
"""

from typing import Any

import pytest

from rules import explain_program
from tests.rules.conditions import GBP, LONDON, ProgramBuilder, TxBuilder, at, case

REASONS = [
    case(
        "amount below the minimum",
        {"min_amount": 300, **GBP},
        "amount 250 is below the minimum of 300 (GBP minor units)",
        {"amount": 250},
    ),
    case(
        "amount above the maximum",
        {"max_amount": 300, **GBP},
        "amount 450 is above the maximum of 300 (GBP minor units)",
    ),
    case(
        "late evening outside the hours",
        {"hours_of_day": [7, 8, 9, 10, 11], **LONDON},
        "Tuesday 23:10 Europe/London is outside the hours 07:00-11:59",
        at("2025-03-11T23:10:00Z"),
    ),
    case(
        "several runs of hours",
        {"hours_of_day": [17, 7, 8, 18, 12], **LONDON},
        "Tuesday 23:10 Europe/London is outside the hours 07:00-08:59, 12:00-12:59, 17:00-18:59",
        at("2025-03-11T23:10:00Z"),
    ),
    case(
        "weekend outside weekdays",
        {"days_of_week": [1, 2, 3, 4, 5], **LONDON},
        "Sunday 11:00 Europe/London is not on Monday-Friday",
        at("2025-06-15T10:00:00Z"),
    ),
    case(
        "missing brand",
        {"brand_ids": ["brand_tea"]},
        "merchant brand is not given, and the program needs brand_tea",
        {"merchant": {"brand_id": None}},
    ),
    case(
        "unlisted merchant among many",
        {"merchant_ids": [f"m{n}" for n in range(8)]},
        "merchant mer_soho is not one of m0, m1, m2, m3, m4, m5 and 2 more",
    ),
    case(
        "excluded merchant",
        {"exclude_merchant_ids": ["mer_soho"]},
        "merchant mer_soho is excluded by the program",
    ),
    case("BIN prefix", {"bin_prefixes": ["5"]}, "card BIN 41234567 does not start with 5"),
    case(
        "postcode prefix",
        {"merchant_postcodes": ["EC1"]},
        "merchant postcode W1D3QF does not start with EC1",
    ),
    case(
        "auth on a clearing program",
        {},
        "the program stamps on clearing, and this is an auth",
        {"type": "auth"},
    ),
    case(
        "refund",
        {},
        "a refund never stamps; it can only undo a stamp",
        {"type": "refund", "original_id": "txn_0"},
    ),
]


@pytest.mark.parametrize(("rules", "tx_changes", "program_changes", "reason"), REASONS)
def test_a_miss_reads_as_a_sentence_a_support_agent_can_use(
    make_tx: TxBuilder,
    make_program: ProgramBuilder,
    rules: dict[str, Any],
    tx_changes: dict[str, Any],
    program_changes: dict[str, Any],
    reason: str,
) -> None:
    decision = explain_program(make_program(rules, **program_changes), make_tx(**tx_changes))

    assert decision.reason == reason


def test_a_paused_program_says_so(make_tx: TxBuilder, make_program: ProgramBuilder) -> None:
    decision = explain_program(make_program({}, status="paused"), make_tx())

    assert str(decision) == "lp_test: no match, status: the program is paused, not active"


def test_a_purchase_before_the_window_names_both_instants(
    make_tx: TxBuilder, make_program: ProgramBuilder
) -> None:
    decision = explain_program(make_program({}, active_from="2025-04-01T00:00:00Z"), make_tx())

    assert decision.reason == (
        "purchase at 2025-03-11 08:15:00+00:00 is before the program starts at "
        "2025-04-01 00:00:00+00:00"
    )
