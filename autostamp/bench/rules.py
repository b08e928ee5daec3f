"""Rules benchmark: single-core matches per second as the live programs grow from 10 to 100,000.

The population grows the way a publisher's catalogue does: by programs for more merchants and
brands. Every population holds the same small fixed set of programs that name no merchant or
brand (two name only MCCs, two name nothing), since the contract keeps that bucket small.
Populations are prefixes of one seeded sequence, so each larger one contains the smaller.

One fixed mix of transactions is matched against each population: 30% at merchants that
programs of every population name, 10% at merchants or brands named only somewhere in the
100,000, and the rest at merchants and brands drawn from universes (5 million merchants, half a
million brands) far larger than any catalogue, which the biggest population hits now and then.

Matching is timed per chunk of 1,000 transactions, each chunk read once untimed first (a worker
matches a transaction it has just parsed, still in cache), the sizes taking turns, best of three
per chunk. Times are CPU time of this process, so other work on the machine counts less.
The rebuild is a full ``Matcher(programs)`` with the garbage collector on, as a worker sees it.
"""

import gc
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from rules import CardTransaction, DisplayContent, FixedReward, Matcher, ProgramDefinition
from rules.samples import SAMPLE_DISPLAY

SEED = 4217
SIZES = (10, 1_000, 100_000)
MERCHANTS = 5_000_000
BRANDS = 500_000
MCCS = ("5411", "5812", "5814", "5912", "5941", "5999", "5311", "5541", "5651", "5732", "7832")
REPEATS = 3
CHUNK = 1_000
T = TypeVar("T")
START = datetime(2025, 3, 24, tzinfo=UTC)  # a week that crosses the UK's spring DST change

# Validated once and shared: every program's reward and display are the same, and pydantic
# takes a model instance as it is.
_REWARD = FixedReward(amount=500, currency="GBP")
_DISPLAY = DisplayContent.model_validate(SAMPLE_DISPLAY)


def _mcc_of(merchant: int) -> str:
    return MCCS[merchant % len(MCCS)]


def _program(index: int, rules: dict[str, Any], rng: random.Random) -> ProgramDefinition:
    status = rng.choices(("active", "paused", "archived"), (95, 3, 2))[0]
    window: dict[str, str] = {}
    if rng.random() < 0.2:
        window = {"active_from": (START - timedelta(days=rng.randint(0, 30))).isoformat()}
        window["active_until"] = (START + timedelta(days=rng.randint(1, 30))).isoformat()
    return ProgramDefinition.model_validate(
        {
            "id": f"lp_{index:06d}",
            "name": f"Program {index}",
            "qualifying_threshold": rng.randint(3, 10),
            "reward_config": _REWARD,
            "display_content": _DISPLAY,
            "rules": rules,
            "status": status,
            **window,
        }
    )


def _extras(rng: random.Random) -> dict[str, Any]:
    rules: dict[str, Any] = {}
    if rng.random() < 0.4:
        rules |= {"currencies": ["GBP"], "min_amount": rng.choice((300, 500, 1000))}
    if rng.random() < 0.2:
        rules["card_schemes"] = rng.sample(("visa", "mastercard", "amex"), rng.randint(1, 2))
    if rng.random() < 0.2:
        rules["merchant_countries"] = ["GB"]
    if rng.random() < 0.05:
        rules["bin_prefixes"] = [str(rng.randint(400000, 499999))]
    if rng.random() < 0.15:
        start = rng.randint(6, 14)
        rules |= {"hours_of_day": list(range(start, start + 6)), "timezone": "Europe/London"}
    if rng.random() < 0.1:
        rules["days_of_week"] = [1, 2, 3, 4, 5]
    if rng.random() < 0.1:
        rules["stamp_on"] = "auth"
    return rules


def _keyed_rules(rng: random.Random) -> dict[str, Any]:
    rules = _extras(rng)
    if rng.random() < 0.8:
        merchants = rng.sample(range(MERCHANTS), rng.randint(1, 3))
        rules["merchant_ids"] = [f"m{m}" for m in merchants]
        if rng.random() < 0.3:
            rules["mccs"] = [_mcc_of(merchants[0])]
        return rules
    rules["brand_ids"] = [f"b{rng.randrange(BRANDS)}"]
    if rng.random() < 0.5:
        rules["mccs"] = [rng.choice(MCCS)]
    if rng.random() < 0.1:
        rules["exclude_merchant_ids"] = [f"m{rng.randrange(MERCHANTS)}"]
    return rules


def _unkeyed_rules() -> list[dict[str, Any]]:
    gbp = {"currencies": ["GBP"], "min_amount": 5000}
    return [
        {"mccs": ["5814"], **gbp},
        {"mccs": ["5541"], "card_schemes": ["amex"]},
        {"card_schemes": ["amex"], "merchant_countries": ["GB"], **gbp},
        {"bin_prefixes": ["4929"], "days_of_week": [6, 7], "timezone": "Europe/London"},
    ]


def build_programs(count: int) -> list[ProgramDefinition]:
    """The first ``count`` programs of the seeded population."""
    rng = random.Random(SEED)
    unkeyed = _unkeyed_rules()
    return [
        _program(index, unkeyed[index] if index < len(unkeyed) else _keyed_rules(rng), rng)
        for index in range(count)
    ]


def _named(programs: Sequence[ProgramDefinition], field: str) -> list[str]:
    return [key for p in programs for key in (getattr(p.rules, field) or ())]


def build_transactions(count: int, programs: Sequence[ProgramDefinition]) -> list[CardTransaction]:
    """The fixed transaction mix, drawn against the largest population."""
    rng = random.Random(SEED + 1)
    everywhere = _named(programs[: SIZES[0]], "merchant_ids")
    anywhere, brands = _named(programs, "merchant_ids"), _named(programs, "brand_ids")
    return [_transaction(n, rng, everywhere, anywhere, brands) for n in range(count)]


def _where(
    rng: random.Random, everywhere: list[str], anywhere: list[str], brands: list[str]
) -> tuple[str, str | None]:
    draw = rng.random()
    merchant = f"m{rng.randrange(MERCHANTS)}"
    brand = rng.choice((None, f"b{rng.randrange(BRANDS)}"))
    if draw < 0.30:
        merchant = rng.choice(everywhere)
    elif draw < 0.37:
        merchant = rng.choice(anywhere)
    elif draw < 0.40:
        brand = rng.choice(brands)
    return merchant, brand


def _transaction(
    n: int, rng: random.Random, everywhere: list[str], anywhere: list[str], brands: list[str]
) -> CardTransaction:
    merchant, brand = _where(rng, everywhere, anywhere, brands)
    return CardTransaction.model_validate(
        {
            "id": f"tx_{n}",
            "type": rng.choices(("clearing", "auth", "refund"), (70, 20, 10))[0],
            "original_id": "tx_0",
            "member_id": f"member_{rng.randrange(50_000)}",
            "amount": rng.randint(100, 20_000),
            "currency": rng.choices(("GBP", "EUR"), (9, 1))[0],
            "merchant": {
                "id": merchant,
                "name": "Shop",
                "mcc": _mcc_of(int(merchant[1:])),
                "brand_id": brand,
                "country": rng.choices(("GB", "FR"), (9, 1))[0],
                "postcode": "SW1A 1AA",
            },
            "card": {
                "id": f"card_{rng.randrange(10**9)}",
                "scheme": rng.choices(("visa", "mastercard", "amex"), (6, 3, 1))[0],
                "bin": str(rng.randint(400000, 559999)),
            },
            "occurred_at": (START + timedelta(seconds=rng.randrange(7 * 86_400))).isoformat(),
        }
    )


@contextmanager
def _collector_ignoring_setup() -> Iterator[None]:
    # The population is setup, not measured: build it without the collector, then keep its
    # millions of objects out of every later collection, as a worker that freezes after
    # loading its programs would.
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        gc.enable()


def _best_seconds(action: Callable[[], T], repeats: int) -> tuple[float, T]:
    best, result = float("inf"), None
    for _ in range(repeats):
        gc.collect()
        started = time.process_time()
        result = action()
        best = min(best, time.process_time() - started)
    return best, cast(T, result)


def _match_all(matcher: Matcher, txs: Sequence[CardTransaction]) -> None:
    match = matcher.match
    for tx in txs:
        match(tx)


def _match_rates(matchers: dict[int, Matcher], txs: Sequence[CardTransaction]) -> dict[int, float]:
    # Each chunk of the mix is timed REPEATS times per size and its best time kept; the sizes
    # take turns chunk by chunk, so a noisy moment on a shared machine hits them alike. A
    # chunk is read once untimed first, as a worker matches a transaction it has just parsed.
    chunks = [txs[start : start + CHUNK] for start in range(0, len(txs), CHUNK)]
    best = {size: [float("inf")] * len(chunks) for size in matchers}
    for _ in range(REPEATS):
        gc.collect()
        for n, chunk in enumerate(chunks):
            _match_all(matchers[SIZES[0]], chunk)
            for size, matcher in matchers.items():
                started = time.process_time()
                _match_all(matcher, chunk)
                best[size][n] = min(best[size][n], time.process_time() - started)
    return {size: len(txs) / sum(times) for size, times in best.items()}


def _print_population(
    size: int, matcher: Matcher, txs: Sequence[CardTransaction], rate: float
) -> None:
    found = sum(len(matcher.match(tx)) for tx in txs) / len(txs)
    sample = txs[:2_000]
    candidates = sum(len(matcher.explain(tx)) for tx in sample) / len(sample)
    print(
        f"programs={size} match_per_s={rate:.0f} "
        f"matches_per_tx={found:.3f} candidates_per_tx={candidates:.2f}"
    )


def _measure_upsert(matcher: Matcher, programs: Sequence[ProgramDefinition]) -> float:
    changed = [p.model_copy(update={"version": p.version + 1}) for p in programs[-1000:]]
    seconds, _ = _best_seconds(lambda: list(map(matcher.upsert, changed)), REPEATS)
    return seconds / len(changed)


def run(quick: bool = False) -> None:
    """Print the figures as key=value lines, the headline last."""
    with _collector_ignoring_setup():
        programs = build_programs(SIZES[-1])
        txs = build_transactions(2_000 if quick else 20_000, programs)
    try:
        _measure(programs, txs, quick)
    finally:
        gc.unfreeze()


def _measure(
    programs: Sequence[ProgramDefinition], txs: Sequence[CardTransaction], quick: bool
) -> None:
    print(f"transactions={len(txs)} repeats={REPEATS}")
    rebuild, full = _best_seconds(lambda: Matcher(programs), 1 if quick else REPEATS)
    matchers = {size: full if size == len(programs) else Matcher(programs[:size]) for size in SIZES}
    gc.freeze()
    rates = _match_rates(matchers, txs)
    for size, matcher in matchers.items():
        _print_population(size, matcher, txs, rates[size])
    upsert = _measure_upsert(full, programs)
    print(f"rebuild_100k_s={rebuild:.3f} upsert_us={upsert * 1e6:.1f}")
    ratio = rates[SIZES[-1]] / rates[SIZES[0]]
    print(
        f"rules: match_per_s_10={rates[10]:.0f} match_per_s_1k={rates[1_000]:.0f} "
        f"match_per_s_100k={rates[100_000]:.0f} ratio_100k_vs_10={ratio:.2f} "
        f"rebuild_100k_s={rebuild:.3f}"
    )


if __name__ == "__main__":
    run()
