"""The payout report rule against its promise: the order and repetition of reports never matter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from ledger.payout_reports import PayoutReport, PayoutState, apply_report, retried

START = datetime(2026, 12, 1, tzinfo=UTC)


def reports(attempts: int) -> st.SearchStrategy[list[PayoutReport]]:
    report = st.builds(
        PayoutReport,
        attempt=st.integers(1, attempts),
        outcome=st.sampled_from(["paid", "failed"]),
        reported_at=st.integers(0, 10_000).map(lambda s: START + timedelta(seconds=s)),
        reason=st.just("declined"),
    )
    # Distinct times: two reports of one instant are one report.
    return st.lists(report, min_size=1, max_size=12, unique_by=lambda r: r.reported_at)


def settle(state: PayoutState, delivered: list[PayoutReport]) -> PayoutState:
    for report in delivered:
        state = apply_report(state, report) or state
    return state


@given(attempts=st.integers(1, 3), data=st.data())
def test_the_final_payout_depends_on_the_set_of_reports_not_their_order(
    attempts: int, data: st.DataObject
) -> None:
    sent = data.draw(reports(attempts))
    delivered = data.draw(st.permutations(sent + data.draw(st.lists(st.sampled_from(sent)))))
    state = PayoutState("triggered", attempts)

    assert settle(state, delivered) == settle(state, sorted(sent, key=lambda r: r.reported_at))


@given(attempts=st.integers(1, 3), data=st.data())
def test_paid_is_final_and_a_failure_of_a_retried_attempt_changes_nothing(
    attempts: int, data: st.DataObject
) -> None:
    sent = data.draw(reports(attempts))
    final = settle(PayoutState("triggered", attempts), sent)

    if any(r.outcome == "paid" for r in sent):
        assert final.status == "paid"
    elif any(r.attempt == attempts for r in sent):
        current = [r for r in sent if r.attempt == attempts]
        assert final.status == "failed"
        assert final.reported_at == max(r.reported_at for r in current)
    else:
        assert final.status == "triggered"


def test_a_retry_moves_only_a_failed_payout_to_its_next_attempt() -> None:
    assert retried(PayoutState("failed", 1, "declined", START)) == PayoutState("triggered", 2)
    assert retried(PayoutState("paid", 1)) is None
    assert retried(PayoutState("triggered", 1)) is None
