"""`autostamp rules explain` on the example files: the answer a support agent would read."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autostamp.rules_cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
COFFEE = str(EXAMPLES / "programs" / "coffee-buy-5-get-1.yaml")
GROCERY = str(EXAMPLES / "programs" / "grocery-fixed-reward.json")
QUALIFYING = str(EXAMPLES / "transactions" / "coffee-qualifying.json")
NEAR_MISS = str(EXAMPLES / "transactions" / "coffee-near-miss.json")


def explain(*args: str) -> tuple[int, list[str], str]:
    result = CliRunner().invoke(app, ["explain", *args])
    return result.exit_code, result.stdout.splitlines(), result.stderr


def test_a_qualifying_coffee_purchase_matches() -> None:
    code, lines, _ = explain("--program", COFFEE, "--transaction", QUALIFYING)

    assert (code, lines) == (0, ["lp_coffee_buy_5_get_1: matched"])


def test_a_near_miss_names_the_condition_that_failed() -> None:
    code, lines, _ = explain("-p", COFFEE, "-t", NEAR_MISS)

    assert (code, lines) == (
        0,
        [
            "lp_coffee_buy_5_get_1: no match, min_amount: "
            "amount 250 is below the minimum of 300 (GBP minor units)"
        ],
    )


def test_a_program_the_indexes_never_reach_is_listed_with_the_reason() -> None:
    code, lines, _ = explain("-p", GROCERY, "-p", COFFEE, "-t", QUALIFYING)

    assert code == 0
    assert lines == [
        "lp_coffee_buy_5_get_1: matched",
        "lp_greengrocer_weekday_10: not a candidate, merchant_ids: merchant "
        "mer_bean_brothers_soho is not one of mer_greengrocer_hackney, mer_greengrocer_islington",
    ]


def test_when_no_program_is_a_candidate_it_says_so_first() -> None:
    _, lines, _ = explain("-p", GROCERY, "-t", QUALIFYING)

    assert lines[0].startswith("no program was a candidate: none names merchant")
    assert lines[1].startswith("lp_greengrocer_weekday_10: not a candidate, merchant_ids:")


def test_a_broken_program_file_exits_2_with_the_fault(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: lp_x\nname: [unclosed\n")

    code, lines, errors = explain("-p", str(broken), "-t", QUALIFYING)

    assert (code, lines) == (2, [])
    assert errors.startswith(f"error: {broken}: line 3, column 1: YAML syntax error: ")


def test_an_invalid_transaction_file_exits_2_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "tx.json"
    bad.write_text('{"id": "t", "amount": 1.5}')

    code, _, errors = explain("-p", COFFEE, "-t", str(bad))

    assert code == 2
    assert errors == f"error: {bad}: type: is required (and 6 more)\n"


def test_the_instance_currency_lets_k42s_literal_program_apply_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    k42 = json.loads(Path(GROCERY).read_text())
    k42["reward_config"] = {"type": "fixed-reward", "amount": 500}
    program = tmp_path / "k42.json"
    program.write_text(json.dumps(k42))

    refused, _, why = explain("-p", str(program), "-t", QUALIFYING)
    monkeypatch.setenv("AUTOSTAMP_DEFAULT_CURRENCY", "GBP")
    accepted, _, _ = explain("-p", str(program), "-t", QUALIFYING)

    assert refused == 2 and "currency" in why
    assert accepted == 0
