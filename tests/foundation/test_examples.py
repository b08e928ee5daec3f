"""The example files of the README walkthrough load, and do what the walkthrough says."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules import InvalidTransaction, Matcher, load_program, parse_transaction

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("path", sorted((EXAMPLES / "programs").iterdir()), ids=str)
def test_every_example_program_loads(path: Path) -> None:
    assert load_program(path).id.startswith("lp_")


def test_the_walkthrough_purchases_stamp_the_bakery_program_and_one_is_refused() -> None:
    bakery = load_program(EXAMPLES / "programs" / "bakery-3-visits.yaml")
    lines = (EXAMPLES / "transactions" / "bakery-purchases.jsonl").read_text().splitlines()
    lines = [line.replace("OCCURRED_AT", "2026-11-22T10:00:00Z") for line in lines]
    matcher = Matcher([bakery])
    for line in lines[:3]:
        assert matcher.match(parse_transaction(line.encode())) == [bakery]
    with pytest.raises(InvalidTransaction, match="amount"):
        parse_transaction(lines[3].encode())
