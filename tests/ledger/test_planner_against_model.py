"""The planner reaches the model's state for every history, however it is batched and repeated."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, note, settings
from hypothesis import strategies as st

from ledger.memory import InMemoryLedger
from ledger.thresholds import Adjustment
from tests.conftest import examples
from tests.ledger.histories import adjustments, deliveries, describe, distinct, scenarios
from tests.ledger.model import Model

NOW = datetime(2026, 3, 10, tzinfo=UTC)


def ledger_state(ledger: InMemoryLedger) -> dict[str, Any]:
    return {
        cid: {
            "counter": (c.tally.unredeemed_purchases, c.tally.owed_stamps, c.tally.cycle),
            "stamps": {
                s.purchase_id: (s.status.value, s.transaction_id, s.void_transaction_id)
                for s in ledger.stamps.values()
                if s.collection_id == cid
            },
            "rewards": {
                r.cycle: (r.amount, r.currency, r.transaction_id)
                for r in ledger.rewards.values()
                if r.collection_id == cid
            },
        }
        for cid, c in ledger.collections.items()
    }


def model_state(model: Model) -> dict[str, Any]:
    return {
        c.id: {
            "counter": (max(c.progress, 0), max(-c.progress, 0), c.cycle),
            "stamps": {p: (s.status, s.transaction_id, s.voided_by) for p, s in c.stamps.items()},
            "rewards": dict(c.rewards),
        }
        for c in model.collections
    }


@settings(max_examples=examples(2000), deadline=None)
@given(data=st.data())
def test_the_planner_reaches_the_state_of_the_model_whatever_the_delivery(
    data: st.DataObject,
) -> None:
    scenario = data.draw(scenarios())
    batches = data.draw(deliveries(scenario.events))
    note(describe(scenario, batches))
    ledger = InMemoryLedger(scenario.programs, scenario.enrollments)
    for batch in batches:
        ledger.stamp(batch, NOW)
    model = Model(scenario.programs, scenario.enrollments).apply(distinct(batches))
    assert ledger_state(ledger) == model_state(model)


@settings(max_examples=examples(1000), deadline=None)
@given(data=st.data())
def test_adjustments_between_batches_follow_the_model(data: st.DataObject) -> None:
    scenario = data.draw(scenarios())
    batches = data.draw(deliveries(scenario.events))
    steps = data.draw(adjustments(scenario.enrollments, len(batches)))
    note(describe(scenario, batches, steps))
    ledger = InMemoryLedger(scenario.programs, scenario.enrollments)
    model = Model(scenario.programs, scenario.enrollments)
    for n in range(len(batches) + 1):
        for step in (s for s in steps if s.after == n):
            made = ledger.adjust(
                Adjustment(f"adj_{step.key}", step.collection_id, step.delta, "support"),
                step.key,
                NOW,
            )
            assert (made is not None) == model.adjust(step.collection_id, step.delta, step.key)
        if n < len(batches):
            ledger.stamp(batches[n], NOW)
            model.apply(batches[n])
        assert ledger_state(ledger) == model_state(model)
    for c in ledger.collections.values():
        assert c.tally.unredeemed_purchases < scenario.programs[c.program_id].qualifying_threshold
    # Within a collection; two programs may each reward the same purchase.
    refunded = [
        (r.collection_id, r.purchase_id) for r in ledger.rewards.values() if r.type == "refund"
    ]
    assert len(refunded) == len(set(refunded)), "a purchase was paid back twice"
