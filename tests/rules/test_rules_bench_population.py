"""The rules benchmark's synthetic population: deterministic, honest, with a fixed small bucket."""

from autostamp.bench.rules import build_programs, build_transactions
from rules import Matcher


def keyless_or_mcc_only(count: int) -> int:
    named = ("merchant_ids", "brand_ids")
    programs = build_programs(count)
    return sum(1 for p in programs if not any(getattr(p.rules, field) for field in named))


def test_the_population_is_the_same_on_every_run_and_grows_by_extension() -> None:
    assert build_programs(300) == build_programs(300)
    assert build_programs(3_000)[:300] == build_programs(300)


def test_programs_naming_no_merchant_or_brand_stay_a_fixed_small_set() -> None:
    assert keyless_or_mcc_only(50) == keyless_or_mcc_only(3_000) == 4


def test_the_transaction_mix_finds_real_matches_among_the_programs() -> None:
    programs = build_programs(2_000)
    txs = build_transactions(1_000, programs)
    matcher = Matcher(programs)

    matched = sum(1 for tx in txs if matcher.match(tx))

    assert 0.1 < matched / len(txs) < 0.9
