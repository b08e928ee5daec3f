"""The planner, the first model and the contract model reach one state after every step of a
history: batches of events, and between them adjustments, program edits, unenrollments,
enrollments again and erasures."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, note, settings

from ledger.memory import InMemoryLedger
from ledger.thresholds import Adjustment
from tests.conftest import examples
from tests.ledger.contract_model import ContractModel
from tests.ledger.histories import (
    AdjustmentStep,
    EditStep,
    EnrollStep,
    EraseStep,
    History,
    Step,
    UnenrollStep,
    describe_history,
    histories,
)
from tests.ledger.model import Model
from tests.ledger.test_planner_against_model import ledger_state, model_state

NOW = datetime(2026, 3, 10, tzinfo=UTC)


def take(step: Step, ledger: InMemoryLedger, models: list[Any]) -> None:
    """Take one step on the planner and on each model; each answers as the planner does."""
    if isinstance(step, AdjustmentStep):
        adjustment = Adjustment(f"adj_{step.key}", step.collection_id, step.delta, "support")
        made = ledger.adjust(adjustment, step.key, NOW) is not None
        answers = [m.adjust(step.collection_id, step.delta, step.key) for m in models]
        assert answers == [made] * len(models), f"adjustment made by the planner: {made}"
    elif isinstance(step, EditStep):
        applied = ledger.apply_program(step.definition, NOW)
        answers = [m.apply_program(step.definition, NOW) for m in models]
        assert answers == [applied] * len(models), f"edit applied by the planner: {applied}"
    elif isinstance(step, UnenrollStep):
        ledger.unenroll(step.collection_id, NOW)
        for m in models:
            m.unenroll(step.collection_id, NOW)
    elif isinstance(step, EnrollStep):
        ledger.enroll(step.enrollment)
        for m in models:
            m.enroll(step.enrollment)
    elif isinstance(step, EraseStep):
        ledger.erase(step.member_id, NOW)
        for m in models:
            m.erase(step.member_id, NOW)


def replay(history: History) -> None:
    """Run the history through all three, comparing their states after every step and batch."""
    scenario = history.scenario
    ledger = InMemoryLedger(scenario.programs, scenario.enrollments)
    first = Model(scenario.programs, scenario.enrollments)
    contract = ContractModel(scenario.programs, scenario.enrollments)
    for n in range(len(history.batches) + 1):
        for step in history.steps_after(n):
            take(step, ledger, [first, contract])
            agree(ledger, first, contract)
        if n < len(history.batches):
            ledger.stamp(history.batches[n], NOW)
            first.apply(history.batches[n])
            contract.apply(history.batches[n])
            agree(ledger, first, contract)
    for c in contract.collections.values():
        assert c.progress < contract.programs[c.program_id].qualifying_threshold
    # A refund of a cycle with nothing left to pay back names no purchase and pays 0.
    refunded = [
        (r.collection_id, r.purchase_id)
        for r in ledger.rewards.values()
        if r.type == "refund" and r.purchase_id is not None
    ]
    assert len(refunded) == len(set(refunded)), "a purchase was paid back twice"


def agree(ledger: InMemoryLedger, first: Model, contract: ContractModel) -> None:
    expected = contract.state()
    assert ledger_state(ledger) == expected, "the planner departs from the contract model"
    assert model_state(first) == expected, "the first model departs from the contract model"


@settings(max_examples=examples(5000), deadline=None)
@given(history=histories())
def test_the_planner_and_both_models_agree_after_every_step_of_a_contract_history(
    history: History,
) -> None:
    note(describe_history(history))
    replay(history)


@settings(max_examples=examples(2000), deadline=None)
@given(drawn=histories())
def test_the_planner_and_both_models_agree_on_the_events_of_a_contract_history_alone(
    drawn: History,
) -> None:
    """Remembered auths, split shipments and reused ids, with adjustments but no other step."""
    enrolled = {e.collection_id for e in drawn.scenario.enrollments}
    steps: list[Step] = [
        s for s in drawn.steps if isinstance(s, AdjustmentStep) and s.collection_id in enrolled
    ]
    history = History(drawn.scenario, drawn.batches, steps)
    note(describe_history(history))
    replay(history)
