"""The fast path of the backtest, which skips lines before validating them, changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.backtest import backtest
from ledger.sieve import select
from rules import load_program
from tests.backtest.test_report import COFFEE
from tests.conftest import examples

START = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
IDS = [f"t{n}" for n in range(6)]
MERCHANTS = [
    {
        "id": "mer_bb",
        "name": "Bean",
        "mcc": "5814",
        "brand_id": "brand_bean_brothers",
        "country": "GB",
    },
    {"id": "mer_bb_lhr_t5", "name": "Bean", "mcc": "5814", "brand_id": "brand_bean_brothers"},
    {"id": "mer_x", "name": "Other", "mcc": "5814", "brand_id": "brand_x", "country": "GB"},
    {"id": "mer_y", "name": "Other", "mcc": "5411", "country": "GB"},
    {"id": "mer_z", "name": "Other", "mcc": "5411", "brand_id": None},
]


@st.composite
def transaction(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["clearing", "clearing", "auth", "refund", "reversal"]))
    tx: dict[str, Any] = {
        "id": draw(st.sampled_from(IDS)),
        "type": kind,
        "member_id": draw(st.sampled_from(["m1", "m2"])),
        "amount": draw(st.sampled_from([150, 350, 350, 500])),
        "currency": "GBP",
        "merchant": draw(st.sampled_from(MERCHANTS)),
        "card": {"id": "c1", "scheme": draw(st.sampled_from(["visa", "visa", "amex"]))},
        "occurred_at": (START + timedelta(hours=draw(st.integers(0, 36)))).isoformat(),
    }
    if draw(st.booleans()):
        tx["purchase_id"] = draw(st.sampled_from(IDS))
    if kind in ("refund", "reversal"):
        tx["original_id"] = draw(st.sampled_from(IDS))
    return tx


@st.composite
def line(draw: st.DrawFn) -> bytes:
    tx = draw(transaction())
    spoil = draw(st.sampled_from([None, None, None, None, "amount", "merchant", "json", "type"]))
    if spoil == "amount":
        tx["amount"] = -1
    elif spoil == "merchant":
        tx["merchant"] = {"id": tx["merchant"]["id"]}
    elif spoil == "type":
        tx.pop("original_id", None) if tx["type"] in ("refund", "reversal") else tx.pop("card")
    elif spoil == "json":
        return orjson.dumps(tx)[:-3]
    return orjson.dumps(tx)


@settings(max_examples=examples(400), deadline=None)
@given(st.lists(line(), max_size=30))
def test_skipping_lines_gives_the_report_of_validating_every_line(lines: list[bytes]) -> None:
    program = load_program(COFFEE)
    numbered = [(f"line {n}", raw) for n, raw in enumerate(lines, 1)]
    fast = backtest(program, select(numbered, program, sift=True))
    full = backtest(program, select(numbered, program, sift=False))
    assert fast.as_json() == full.as_json()
    assert len(fast.selection.transactions) <= len(full.selection.transactions)


def test_an_undo_at_another_merchant_that_takes_a_kept_undos_id_first_is_kept() -> None:
    program = load_program(COFFEE)
    bean, other = MERCHANTS[0], MERCHANTS[3]
    at = START + timedelta(hours=3)
    purchase = {"id": "t1", "type": "clearing", "member_id": "m1", "amount": 350}
    purchase |= {"currency": "GBP", "merchant": bean, "card": {"id": "c", "scheme": "visa"}}
    inert = purchase | {"id": "r1", "type": "refund", "original_id": "zz", "merchant": other}
    undo = purchase | {"id": "r1", "type": "refund", "original_id": "t1"}
    lines = [
        inert | {"occurred_at": at.isoformat()},
        purchase | {"occurred_at": (at + timedelta(hours=1)).isoformat()},
        undo | {"occurred_at": (at + timedelta(hours=2)).isoformat()},
    ]
    numbered = [(f"line {n}", orjson.dumps(x)) for n, x in enumerate(lines, 1)]
    fast = backtest(program, select(numbered, program, sift=True))
    full = backtest(program, select(numbered, program, sift=False))
    assert fast.as_json() == full.as_json()
    assert (fast.total.stamps, fast.total.voids) == (1, 0)  # the ledger took r1 once: inert
