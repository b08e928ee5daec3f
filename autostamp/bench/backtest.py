"""Backtest benchmark: transactions per second through `autostamp programs backtest`, one core.

It writes a seeded JSON-lines file (1,000,000 transactions by default, over 30 days and
5,000 members; 4% at Bean Brothers cafes, the merchants of
`examples/programs/coffee-buy-5-get-1.yaml`, 3% of all refunded) and times reading it,
selecting, validating, matching and planning it, as the command does. The last line is the
headline: `backtest: tx_per_s=N`.
"""

from __future__ import annotations

import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from ledger.backtest import backtest
from ledger.sieve import select
from ledger.transaction_files import numbered_lines
from rules import load_program

SEED = 4217
PROGRAM = Path(__file__).resolve().parents[2] / "examples/programs/coffee-buy-5-get-1.yaml"
START = datetime(2025, 3, 1, tzinfo=UTC)
MEMBERS = 5_000
AT_PROGRAM = 0.04
REFUNDED = 0.03
MCCS = ("5411", "5812", "5814", "5912", "5541", "5651")


def write_file(path: Path, count: int, seed: int = SEED) -> None:
    """`count` transactions in time order, a few percent at the program's merchants."""
    rng = random.Random(seed)
    step = timedelta(days=30) / count
    with path.open("wb") as out:
        for n in range(count):
            tx = _transaction(rng, n, START + step * n)
            out.write(orjson.dumps(tx) + b"\n")
            if rng.random() < REFUNDED:
                out.write(orjson.dumps(_refund(rng, tx, START + step * n)) + b"\n")


def _transaction(rng: random.Random, n: int, at: datetime) -> dict[str, object]:
    ours = rng.random() < AT_PROGRAM
    shop = rng.randrange(40) if ours else rng.randrange(1_000_000)
    merchant: dict[str, object] = {
        "id": f"mer_bb_{shop}" if ours else f"mer_{shop}",
        "name": "Bean Brothers" if ours else f"Shop {shop}",
        "mcc": "5814" if ours else MCCS[shop % len(MCCS)],
        "country": "GB",
    }
    if ours:
        merchant["brand_id"] = "brand_bean_brothers"
    return {
        "id": f"tx_{n}",
        "type": "clearing",
        "member_id": f"m_{rng.randrange(MEMBERS)}",
        "amount": rng.randint(200, 600) if ours else rng.randint(100, 20_000),
        "currency": "GBP",
        "merchant": merchant,
        "card": {"id": f"card_{n % 9973}", "scheme": rng.choice(("visa", "mastercard", "amex"))},
        "occurred_at": at.isoformat(),
    }


def _refund(rng: random.Random, tx: dict[str, object], at: datetime) -> dict[str, object]:
    later = (at + timedelta(hours=rng.randint(1, 48))).isoformat()
    return {
        **tx,
        "id": f"rf_{tx['id']}",
        "type": "refund",
        "original_id": tx["id"],
        "occurred_at": later,
    }


def run(quick: bool = False, transactions: int | None = None) -> None:
    count = transactions or (20_000 if quick else 1_000_000)
    program = load_program(PROGRAM)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "transactions.jsonl"
        write_file(path, count)
        started, cpu = time.perf_counter(), time.process_time()
        selection = select(numbered_lines(path), program)
        report = backtest(program, selection)
        wall, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    total = report.total
    payout = " ".join(f"{c}:{a}" for c, a in sorted(total.payout.items()))
    print(f"lines={selection.read} kept={selection.read - selection.skipped} wall_s={wall:.2f}")
    print(f"cpu_s={cpu_s:.2f} days={len(report.days)} qualifying={total.qualifying}")
    print(f"stamps={total.stamps} voids={total.voids} rewards={total.rewards} payout={payout}")
    print(f"members={total.members} near_misses={dict(total.near_misses)}")
    print(f"backtest: tx_per_s={int(selection.read / wall)}")
