"""A lowered threshold rewards at once every collection whose count reaches it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from ledger.domain import StampStatus, Tally
from ledger.model import CollectionView, StampRow
from ledger.thresholds import Payable, settle
from tests.ledger.histories import T0, program

NOW = datetime(2026, 3, 10, tzinfo=UTC)


def live_stamps(*amounts: int) -> list[Payable]:
    return [
        Payable(
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


def test_payable_purchases_are_the_latest_by_when_they_happened_not_by_when_they_were_stored() -> (
    None
):
    # A capped stamp promoted into the cycle is stored before the purchases counted with it.
    stamps = live_stamps(100, 200, 300)
    promoted = Payable(replace(stamps[0].stamp, occurred_at=T0 + timedelta(hours=9), id=99))
    settled = settle(program("lp_x", threshold=1), collection(2), [promoted, *stamps[1:]], NOW)
    assert [r.amount for r in settled.rewards] == [300, 100]


def test_a_switch_to_refund_pays_each_purchase_back_once_and_nothing_for_added_stamps() -> None:
    # Nine stamps toward a fixed reward: one purchase of 5000, eight added by support.
    one = live_stamps(5000)
    settled = settle(program("lp_x", threshold=3), collection(9), one, NOW)
    assert settled.collection.tally == Tally(0, 4)
    assert [(r.amount, r.currency, r.purchase_id) for r in settled.rewards] == [
        (5000, "GBP", "P1"),
        (0, "XXX", None),
        (0, "XXX", None),
    ]


def test_a_cycle_with_no_live_stamp_completes_all_the_same() -> None:
    fixed = {"type": "fixed-reward", "amount": 500, "currency": "GBP"}
    settled = settle(program("lp_x", threshold=2, reward=fixed), collection(3), [], NOW)
    assert settled.collection.tally == Tally(1, 2)
    assert [(r.amount, r.currency, r.transaction_id) for r in settled.rewards] == [
        (500, "GBP", None)
    ]


def test_a_kept_purchase_is_paid_back_less_its_partial_refunds() -> None:
    kept = [Payable(p.stamp, refunded=999) for p in live_stamps(1000)]
    settled = settle(program("lp_x", threshold=1), collection(1), kept, NOW)
    assert [r.amount for r in settled.rewards] == [1]
