"""Through PostgreSQL too, the ledger, the first model and the contract model reach one state
after every step of a contract history: batches of events, and between them adjustments,
program edits, unenrollments, enrollments again and erasures."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, note, settings
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ledger.adjustments import adjust_collection
from ledger.batch import Source
from ledger.database import transaction
from ledger.erasure import erase_member
from ledger.errors import AdjustmentRefused
from ledger.failures import Backoff
from ledger.idempotency import IdempotencyKeyReused
from ledger.programs import Verdict
from ledger.pseudonyms import Pseudonyms
from ledger.reconcile import reconcile
from ledger.unenrolling import unenroll
from streams.service import StampingService
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
from tests.ledger.test_planner_against_model import model_state
from tests.streams.conftest import Ledger
from tests.streams.test_stamping_against_model import _messages, _reset, ledger_state
from tests.webhooks.support import TEST_KEYRING

NOW = datetime(2026, 3, 10, tzinfo=UTC)


async def take(
    step: Step, service: StampingService, engine: AsyncEngine, models: list[Any], offset: int
) -> None:
    """Take one step on the ledger and on each model; each answers as the ledger does."""
    if isinstance(step, AdjustmentStep):
        try:
            async with transaction(engine) as conn:
                record = await adjust_collection(
                    conn, step.collection_id, step.delta, "support", step.key, None, NOW
                )
            made = not record.replayed
        except (AdjustmentRefused, IdempotencyKeyReused):
            made = False
        answers = [m.adjust(step.collection_id, step.delta, step.key) for m in models]
        assert answers == [made] * len(models), f"adjustment made by the ledger: {made}"
    elif isinstance(step, EditStep):
        source = Source("programs", 0, offset)
        judged = await service.judge_programs([(step.definition, source)], [])
        applied = step.definition.id in judged.ids(Verdict.APPLIED)
        answers = [m.apply_program(step.definition, NOW) for m in models]
        assert answers == [applied] * len(models), f"edit applied by the ledger: {applied}"
    elif isinstance(step, UnenrollStep):
        async with transaction(engine) as conn:
            await unenroll(conn, step.collection_id, NOW)
        for m in models:
            m.unenroll(step.collection_id, NOW)
    elif isinstance(step, EnrollStep):
        e = step.enrollment
        async with transaction(engine) as conn:
            await conn.execute(
                text(
                    "INSERT INTO stamp_collections (id, program_id, member_id, created_at) "
                    "VALUES (:id, :program, :member, :at)"
                ),
                {
                    "id": e.collection_id,
                    "program": e.program_id,
                    "member": e.member_id,
                    "at": e.enrolled_at,
                },
            )
        for m in models:
            m.enroll(e)
    elif isinstance(step, EraseStep):
        async with transaction(engine) as conn:
            await erase_member(conn, TEST_KEYRING, step.member_id, NOW)
        for m in models:
            m.erase(step.member_id, NOW)


def agree(ledger: Ledger, first: Model, contract: ContractModel) -> None:
    expected = contract.state()
    assert ledger_state(ledger) == expected, "the ledger departs from the contract model"
    assert model_state(first) == expected, "the first model departs from the contract model"


@settings(
    max_examples=examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(history=histories())
def test_postgres_and_both_models_agree_after_every_step_of_a_contract_history(
    engine: Engine, database_url: str, ledger: Ledger, history: History
) -> None:
    note(describe_history(history))
    scenario = history.scenario
    _reset(engine, scenario)
    first = Model(scenario.programs, scenario.enrollments)
    contract = ContractModel(scenario.programs, scenario.enrollments)

    async def run() -> None:
        async_engine = create_async_engine(database_url)
        service = StampingService(
            async_engine,
            backoff=Backoff(attempts=2, first_delay_s=0.01),
            pseudonyms=Pseudonyms.of(TEST_KEYRING),
        )
        offsets: list[int] = []
        try:
            for n in range(len(history.batches) + 1):
                for k, step in enumerate(history.steps_after(n)):
                    await take(step, service, async_engine, [first, contract], n * 100 + k)
                    agree(ledger, first, contract)
                if n < len(history.batches):
                    await service.stamp(_messages(history.batches[n], offsets))
                    first.apply(history.batches[n])
                    contract.apply(history.batches[n])
                    agree(ledger, first, contract)
            async with async_engine.begin() as conn:
                assert (await reconcile(conn)).differences == []
        finally:
            await async_engine.dispose()

    asyncio.run(run())
