"""Builders for the rules tests: a valid transaction and a valid program, changed per test."""

from collections.abc import Callable
from copy import deepcopy
from typing import Any

import pytest

from rules import CardTransaction, ProgramDefinition
from rules.samples import sample_program

TX: dict[str, Any] = {
    "id": "txn_1",
    "type": "clearing",
    "member_id": "member_1",
    "amount": 450,
    "currency": "GBP",
    "merchant": {
        "id": "mer_soho",
        "name": "Bean Brothers Soho",
        "mcc": "5814",
        "brand_id": "brand_bean",
        "country": "GB",
        "postcode": "W1D 3QF",
    },
    "card": {"id": "card_tok_1", "scheme": "visa", "bin": "41234567", "last4": "4242"},
    "occurred_at": "2025-03-11T08:15:00Z",  # a Tuesday, 08:15 in London (GMT)
}

PROGRAM: dict[str, Any] = sample_program("lp_test", threshold=5)

TxBuilder = Callable[..., CardTransaction]
ProgramBuilder = Callable[..., ProgramDefinition]


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied; nested dicts merge, a None value removes the key."""
    result = deepcopy(base)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


@pytest.fixture(scope="session")
def tx_data() -> Callable[..., dict[str, Any]]:
    """The raw transaction dict, with changes (``merchant={"mcc": "5411"}`` merges)."""
    return lambda **changes: merged(TX, changes)


@pytest.fixture(scope="session")
def make_tx() -> TxBuilder:
    """A validated transaction, with changes merged into the default one."""
    return lambda **changes: CardTransaction.model_validate(merged(TX, changes))


@pytest.fixture(scope="session")
def make_program() -> ProgramBuilder:
    """A validated program with the given rules, and other fields changed."""

    def build(rules: dict[str, Any] | None = None, **changes: Any) -> ProgramDefinition:
        data = merged(PROGRAM, changes)
        data["rules"] = rules or {}
        return ProgramDefinition.model_validate(data)

    return build
