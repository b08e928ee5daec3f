"""The contract histories hold every kind of history they are meant to, often enough."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, Phase, given, settings

from tests.ledger.histories import HISTORY_KINDS, History, histories, history_kinds

DRAWN = 400
# Each kind must come up in at least this share of histories, so that a change to the
# generator cannot silently stop producing one.
LEAST_SHARE = 0.03


def test_contract_histories_hold_each_new_kind_of_history_in_a_few_percent_of_draws() -> None:
    seen: Counter[str] = Counter()
    drawn = 0

    @settings(
        max_examples=DRAWN,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(histories())
    def draw(history: History) -> None:
        nonlocal drawn
        drawn += 1
        seen.update(history_kinds(history))

    draw()
    shares = {kind: seen[kind] / drawn for kind in HISTORY_KINDS}
    print(f"\nshares of {drawn} contract histories:")
    for kind, share in shares.items():
        print(f"  {share:6.1%}  {kind}")
    assert drawn == DRAWN
    rare = {kind: share for kind, share in shares.items() if share < LEAST_SHARE}
    assert not rare, f"kinds of history drawn too rarely: {rare}"
