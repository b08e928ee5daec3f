"""A lowered threshold rewards at once every collection whose count reaches it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ledger.domain import StampStatus, Tally
from ledger.model import CollectionView, StampRow
from ledger.thresholds import settle
from tests.ledger.histories import T0, program

NOW = datetime(2026, 3, 10, tzinfo=UTC)


def live_stamps(*amounts: int) -> list[StampRow]:
    return [
        StampRow(
            "sc_1",
            f"P{n}",
            f"c{n}",
            1,
            amount,
            "GBP",
            "mer_a",
            "Shop",
            T0 + timedelta(hours=n),
            StampStatus.LIVE,
            id=n,
        )
        for n, amount in enumerate(amounts, start=1)
    ]


def collection(progress: int, cycle: int = 1) -> CollectionView:
    return CollectionView("sc_1", "lp_x", "m1", T0, Tally(progress, cycle))


def test_a_count_at_the_new_threshold_is_rewarded_and_starts_the_next_cycle() -> None:
    settled = settle(program("lp_x", threshold=3), collection(3), live_stamps(100, 200, 300), NOW)
    assert settled.collection.tally == Tally(0, 2)
    assert [(r.cycle, r.amount, r.transaction_id, r.stamps_used) for r in settled.rewards] == [
        (1, 300, "c3", 3)
    ]
    assert [e.reward_id for e in settled.events] == [settled.rewards[0].id]  # type: ignore[union-attr]


def test_every_completed_cycle_is_rewarded_and_the_overflow_carried() -> None:
    stamps = live_stamps(100, 200, 300, 400, 500, 600, 700)
    settled = settle(program("lp_x", threshold=2), collection(7, cycle=3), stamps, NOW)
    assert settled.collection.tally == Tally(1, 6)
    assert [(r.cycle, r.amount) for r in settled.rewards] == [(3, 200), (4, 400), (5, 600)]


def test_a_count_below_the_new_threshold_or_a_debt_is_left_alone() -> None:
    for progress in (1, -2):
        settled = settle(program("lp_x", threshold=2), collection(progress), [], NOW)
        assert settled.collection.tally == Tally(progress, 1)
        assert not settled.rewards
