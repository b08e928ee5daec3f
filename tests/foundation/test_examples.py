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


ORDINALS = {2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth", 7: "seventh"}


@pytest.mark.parametrize("path", sorted((EXAMPLES / "programs").iterdir()), ids=str)
def test_a_refund_example_tells_members_the_purchase_the_code_refunds(path: Path) -> None:
    # A refund pays back the purchase that completes the cycle: the threshold-th one.
    program = load_program(path)
    if program.reward_config.type != "refund":
        pytest.skip("not a refund program")
    shown = program.display_content
    text = " ".join([program.name, shown.title, shown.summary, shown.description, shown.terms])
    text = text.lower()
    refunded = ORDINALS[program.qualifying_threshold]
    others = [word for n, word in ORDINALS.items() if n != program.qualifying_threshold]

    assert refunded in text
    assert not [word for word in others if word in text]
