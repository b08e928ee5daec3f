"""The backtest report over small hand-made files: what the program would have done, per day."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

from autostamp.cli import app
from ledger.backtest import BacktestReport, backtest
from ledger.sieve import select
from rules import load_program

ROOT = Path(__file__).resolve().parents[2]
COFFEE = ROOT / "examples/programs/coffee-buy-5-get-1.yaml"
MONDAY = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)  # 09:00 in London


def coffee(n: int, at: datetime, member: str = "m1", **changes: Any) -> dict[str, Any]:
    tx: dict[str, Any] = {
        "id": f"t{n}",
        "type": "clearing",
        "member_id": member,
        "amount": 350,
        "currency": "GBP",
        "merchant": {
            "id": "mer_bb_soho",
            "name": "Bean Brothers Soho",
            "mcc": "5814",
            "brand_id": "brand_bean_brothers",
            "country": "GB",
        },
        "card": {"id": "card_1", "scheme": "visa"},
        "occurred_at": at.isoformat(),
    }
    return {**tx, **changes}


def refund(n: int, of: str, at: datetime, member: str = "m1") -> dict[str, Any]:
    return coffee(n, at, member, type="refund", original_id=of)


def five_days(member: str = "m1") -> list[dict[str, Any]]:
    return [coffee(n, MONDAY + timedelta(days=n), member) for n in range(5)]


def run(tmp_path: Path, lines: list[Any], **options: Any) -> BacktestReport:
    path = tmp_path / "tx.jsonl"
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else orjson.dumps(x) for x in lines))
    program = load_program(COFFEE)
    return backtest(program, select(_numbered(path), program), **options)


def _numbered(path: Path) -> list[tuple[str, bytes]]:
    return [(f"line {n}", raw) for n, raw in enumerate(path.read_bytes().splitlines(), 1)]


def test_a_completed_cycle_pays_the_fifth_coffee_up_to_the_cap(tmp_path: Path) -> None:
    lines = five_days()
    lines[4]["amount"] = 520
    report = run(tmp_path, lines)
    assert report.total.qualifying == 5 and report.total.stamps == 5
    assert report.total.rewards == 1 and report.total.payout == {"GBP": 450}
    assert report.total.members == 1
    fifth = report.days[(MONDAY + timedelta(days=4)).date()]
    assert (fifth.stamps, fifth.rewards, fifth.payout["GBP"]) == (1, 1, 450)


def test_a_refund_before_the_reward_means_no_reward(tmp_path: Path) -> None:
    report = run(tmp_path, [*five_days(), refund(9, "t2", MONDAY + timedelta(days=3))])
    assert (report.total.stamps, report.total.voids, report.total.rewards) == (5, 1, 0)


def test_a_refund_after_the_reward_leaves_the_reward_paid(tmp_path: Path) -> None:
    report = run(tmp_path, [*five_days(), refund(9, "t2", MONDAY + timedelta(days=6))])
    assert (report.total.stamps, report.total.voids, report.total.rewards) == (5, 1, 1)


def test_a_refund_listed_before_its_purchase_still_voids_it(tmp_path: Path) -> None:
    report = run(tmp_path, [refund(9, "t2", MONDAY + timedelta(days=3)), *five_days()])
    assert (report.total.voids, report.total.rewards) == (1, 0)


def test_the_daily_cap_counts_two_stamps_a_day(tmp_path: Path) -> None:
    lines = [coffee(n, MONDAY + timedelta(hours=n)) for n in range(4)]
    report = run(tmp_path, lines)
    assert report.total.qualifying == 4 and report.total.stamps == 2


def test_purchases_before_enrolled_from_do_not_stamp(tmp_path: Path) -> None:
    enrolled = datetime(2025, 3, 5, tzinfo=UTC)
    report = run(tmp_path, five_days(), enrolled_at=enrolled)
    assert report.total.qualifying == 5 and report.total.stamps == 3


def test_near_misses_are_counted_by_the_condition_that_failed(tmp_path: Path) -> None:
    lines = [
        coffee(1, MONDAY, amount=250),
        coffee(2, MONDAY, amount=290),
        coffee(3, MONDAY.replace(hour=22)),
        coffee(4, MONDAY, card={"id": "c", "scheme": "amex"}),
        coffee(5, MONDAY, type="auth"),  # its clearing is what stamps: no near miss
        coffee(6, MONDAY, merchant={"id": "mer_other", "name": "Other", "mcc": "5814"}),
    ]
    report = run(tmp_path, lines)
    assert report.total.near_misses == {"min_amount": 2, "hours_of_day": 1, "card_schemes": 1}
    assert report.total.qualifying == 0


def test_invalid_lines_are_counted_with_their_first_reasons(tmp_path: Path) -> None:
    lines = [coffee(1, MONDAY), b"not json", coffee(2, MONDAY, amount=-5), b"[1, 2]"]
    report = run(tmp_path, lines)
    assert report.selection.refused == 3
    assert [where for where, _ in report.selection.reasons] == ["line 2", "line 3", "line 4"]
    assert report.total.stamps == 1


def test_lines_at_other_merchants_are_skipped_unvalidated(tmp_path: Path) -> None:
    other = {"id": "mer_x", "name": "X", "mcc": "5411", "brand_id": "brand_x"}
    lines = [coffee(1, MONDAY), coffee(2, MONDAY, merchant=other, amount=-1)]
    report = run(tmp_path, lines)
    assert (report.selection.read, report.selection.skipped, report.selection.refused) == (2, 1, 0)


def test_the_command_reads_csv_and_prints_the_table_and_json(tmp_path: Path) -> None:
    csv = tmp_path / "tx.csv"
    header = "id,type,member_id,amount,currency,merchant.id,merchant.name,merchant.mcc,"
    header += "merchant.brand_id,merchant.country,card.id,card.scheme,occurred_at"
    rows = [
        f"t{n},clearing,m1,350,GBP,mer_bb,Bean,5814,brand_bean_brothers,GB,c1,visa,"
        f"{(MONDAY + timedelta(days=n)).isoformat()}"
        for n in range(5)
    ]
    csv.write_text("\n".join([header, *rows]) + "\n")
    command = ["programs", "backtest", str(COFFEE), "--transactions", str(csv)]
    table = CliRunner().invoke(app, command)
    assert table.exit_code == 0, table.output
    assert "total       5           5       0      1        350 GBP  1" in table.output
    shown = CliRunner().invoke(app, [*command, "--json"])
    document = json.loads(shown.output)
    assert document["total"] == {
        "qualifying": 5,
        "stamps": 5,
        "voids": 0,
        "rewards": 1,
        "payout": {"GBP": 350},
        "members": 1,
        "near_misses": {},
    }
    assert [day["day"] for day in document["days"]][:2] == ["2025-03-03", "2025-03-04"]
    assert document["transactions"] == {"read": 5, "skipped": 0, "invalid": 0, "invalid_first": []}
