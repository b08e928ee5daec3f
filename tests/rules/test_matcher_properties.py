"""Property: the indexed matcher finds exactly what checking every program by hand finds.

The reference below is written from the contract, not from the matcher's code, and draws come
from small alphabets of merchants, brands and MCCs so that matches and near misses are common.
"""

import random
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules import CardTransaction, Matcher, ProgramDefinition
from rules.samples import sample_program
from tests.conftest import examples

MERCHANTS = ("m1", "m2", "m3", "m4")
BRANDS = ("b1", "b2", "b3")
MCCS = ("5411", "5812", "5814")
CURRENCIES = ("GBP", "EUR")
SCHEMES = ("visa", "mastercard", "amex")
BINS = ("412345", "41234567", "41239999", "5500000")
BIN_PREFIXES = ("4", "4123", "412345", "41234567", "55")
POSTCODES = ("SW1A 1AA", "EC1V 9HX", "SW19 2AB")
POSTCODE_PREFIXES = ("SW1", "EC1", "sw19 2", "E")
ZONES = ("UTC", "Europe/London", "America/New_York", "Asia/Kolkata")
# Four-day windows around the 2025 DST changes in North America and in Europe (both ways).
WINDOW_STARTS = (
    datetime(2025, 3, 8, tzinfo=UTC),
    datetime(2025, 3, 28, tzinfo=UTC),
    datetime(2025, 10, 24, tzinfo=UTC),
)
WINDOW_SECONDS = 4 * 86_400
INSTANTS = st.builds(
    lambda start, seconds: start + timedelta(seconds=seconds),
    st.sampled_from(WINDOW_STARTS),
    st.integers(0, WINDOW_SECONDS - 1),
)

SETTINGS = settings(
    max_examples=examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def some(
    values: tuple[Any, ...], most: int = 3, absent: int = 5
) -> st.SearchStrategy[list[Any] | None]:
    """Usually nothing (``absent`` to 1), so that programs are not too strict to ever match."""
    listed = st.lists(st.sampled_from(values), min_size=1, max_size=most)
    return st.one_of(*[st.none()] * absent, listed)


# Strategies are built once: building them per draw costs far more than drawing from them.
PLAIN_RULES = st.fixed_dictionaries(
    {
        "merchant_ids": some(MERCHANTS, absent=1),
        "brand_ids": some(BRANDS, absent=1),
        "mccs": some(MCCS, absent=1),
        "exclude_merchant_ids": some(MERCHANTS, 2),
        "exclude_mccs": some(MCCS, 2),
        "currencies": some(CURRENCIES),
        "card_schemes": some(SCHEMES),
        "bin_prefixes": some(BIN_PREFIXES),
        "merchant_countries": some(("GB", "FR")),
        "merchant_postcodes": some(POSTCODE_PREFIXES),
        "days_of_week": some(tuple(range(1, 8)), 6),
        "hours_of_day": some(tuple(range(24)), 12),
        "timezone": st.sampled_from(ZONES),
        "stamp_on": st.sampled_from(("clearing",) * 4 + ("auth",)),
    }
)
BOUNDS = (
    st.none()
    | st.none()
    | st.tuples(
        st.sampled_from(CURRENCIES),
        st.lists(st.integers(1, 1000), min_size=2, max_size=2).map(sorted),
        st.sampled_from(("min", "max", "both")),
    )
)
WINDOWS = st.one_of(
    st.none(),
    st.none(),
    st.none(),
    st.tuples(
        st.lists(INSTANTS, min_size=2, max_size=2, unique=True).map(sorted),
        st.sampled_from(("from", "until", "both")),
    ),
)
STATUSES = st.sampled_from(("active",) * 8 + ("paused", "archived"))


def rules_from(plain: dict[str, Any], bounds: tuple[str, list[int], str] | None) -> dict[str, Any]:
    """Drawn rules made valid: exclusions lose what is included, amounts get one currency."""
    for excluded, included in (("exclude_merchant_ids", "merchant_ids"), ("exclude_mccs", "mccs")):
        left = [v for v in plain[excluded] or () if v not in (plain[included] or ())]
        plain[excluded] = left or None
    if bounds is not None:
        currency, (low, high), which = bounds
        plain["currencies"] = [currency]
        plain["min_amount"] = low if which in ("min", "both") else None
        plain["max_amount"] = high if which in ("max", "both") else None
    return {key: value for key, value in plain.items() if value is not None}


def window_from(window: tuple[list[datetime], str] | None) -> dict[str, datetime]:
    if window is None:
        return {}
    (start, end), which = window
    bounds = {"active_from": start, "active_until": end}
    return bounds if which == "both" else {f"active_{which}": bounds[f"active_{which}"]}


@st.composite
def programs(draw: st.DrawFn, ids: st.SearchStrategy[str]) -> ProgramDefinition:
    window = window_from(draw(WINDOWS))
    rules = rules_from(draw(PLAIN_RULES), draw(BOUNDS))
    program = sample_program(draw(ids), threshold=3, rules=rules, status=draw(STATUSES), **window)
    return ProgramDefinition.model_validate(program)


def transactions(seed: int, count: int = 20) -> list[CardTransaction]:
    """A batch drawn with a seeded ``random``: one Hypothesis draw instead of four hundred."""
    rng = random.Random(seed)
    return [_transaction(rng) for _ in range(count)]


def _transaction(rng: random.Random) -> CardTransaction:
    kind = rng.choice(("clearing",) * 7 + ("auth",) * 2 + ("refund", "reversal"))
    start = rng.choice(WINDOW_STARTS)
    return CardTransaction.model_validate(
        {
            "id": "txn",
            "type": kind,
            "original_id": "txn_0" if kind in ("refund", "reversal") else None,
            "member_id": "member",
            "amount": rng.randint(1, 1200),
            "currency": rng.choice(CURRENCIES),
            "merchant": {
                "id": rng.choice((*MERCHANTS, "m9")),
                "name": "Shop",
                "mcc": rng.choice((*MCCS, "7011")),
                "brand_id": rng.choice((None, *BRANDS)),
                "country": rng.choice((None, "GB", "FR", "DE")),
                "postcode": rng.choice((None, *POSTCODES)),
            },
            "card": {"id": "card", "scheme": rng.choice(SCHEMES), "bin": rng.choice((None, *BINS))},
            "occurred_at": start + timedelta(seconds=rng.randrange(WINDOW_SECONDS)),
        }
    )


TRANSACTIONS = st.integers(0, 2**32 - 1).map(transactions)


def reference_qualifies(program: ProgramDefinition, tx: CardTransaction) -> bool:
    """The contract, spelled out condition by condition over the program's own fields."""
    r, merchant, card, at = program.rules, tx.merchant, tx.card, tx.occurred_at
    local = at.astimezone(ZoneInfo(r.timezone))
    postcode = (merchant.postcode or "").replace(" ", "").upper()
    checks = [
        program.status == "active",
        program.active_from is None or program.active_from <= at,
        program.active_until is None or at < program.active_until,
        tx.type.value == r.stamp_on.value,
        r.merchant_ids is None or merchant.id in r.merchant_ids,
        r.brand_ids is None or merchant.brand_id in r.brand_ids,
        r.mccs is None or merchant.mcc in r.mccs,
        r.exclude_merchant_ids is None or merchant.id not in r.exclude_merchant_ids,
        r.exclude_mccs is None or merchant.mcc not in r.exclude_mccs,
        r.currencies is None or tx.currency in r.currencies,
        r.min_amount is None or tx.amount >= r.min_amount,
        r.max_amount is None or tx.amount <= r.max_amount,
        r.card_schemes is None or card.scheme in r.card_schemes,
        r.bin_prefixes is None
        or any((card.bin or "").startswith(p) for p in r.bin_prefixes if card.bin),
        r.merchant_countries is None or merchant.country in r.merchant_countries,
        r.merchant_postcodes is None
        or any(postcode.startswith(p) for p in r.merchant_postcodes if merchant.postcode),
        r.days_of_week is None or local.isoweekday() in r.days_of_week,
        r.hours_of_day is None or local.hour in r.hours_of_day,
    ]
    return all(checks)


def expected(programs: dict[str, ProgramDefinition], tx: CardTransaction) -> list[str]:
    return sorted(pid for pid, program in programs.items() if reference_qualifies(program, tx))


def program_lists() -> st.SearchStrategy[list[ProgramDefinition]]:
    ids = st.integers(0, 10_000).map(lambda n: f"lp_{n}")
    return st.lists(programs(ids), max_size=12, unique_by=lambda p: p.id)


@SETTINGS
@given(program_lists(), TRANSACTIONS)
def test_the_indexed_matcher_agrees_with_a_scan_of_every_program(
    population: list[ProgramDefinition], txs: list[CardTransaction]
) -> None:
    matcher = Matcher(population)
    by_id = {program.id: program for program in population}

    for tx in txs:
        found = [program.id for program in matcher.match(tx)]
        assert found == expected(by_id, tx)
        explained = [d.program_id for d in matcher.explain(tx) if d.matched]
        assert explained == found


Operation = tuple[str, Any]


def operations() -> st.SearchStrategy[list[Operation]]:
    ids = st.sampled_from(("lp_a", "lp_b", "lp_c", "lp_d", "lp_e"))
    upsert = programs(ids).map(lambda program: ("upsert", program))
    remove = ids.map(lambda program_id: ("remove", program_id))
    return st.lists(upsert | remove, max_size=15)


@SETTINGS
@given(program_lists(), operations(), TRANSACTIONS)
def test_the_matcher_stays_in_agreement_through_upserts_and_removals(
    population: list[ProgramDefinition], steps: list[Operation], txs: list[CardTransaction]
) -> None:
    matcher = Matcher(population)
    live = {program.id: program for program in population}

    for action, subject in steps:
        if action == "upsert":
            matcher.upsert(subject)
            live[subject.id] = subject
        else:
            assert matcher.remove(subject) == (live.pop(subject, None) is not None)

    assert len(matcher) == len(live)
    for tx in txs:
        assert [program.id for program in matcher.match(tx)] == expected(live, tx)
