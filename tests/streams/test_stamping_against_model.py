"""Through PostgreSQL too, the ledger reaches the model's state whatever the delivery."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, text
from sqlalchemy.ext.asyncio import create_async_engine

from ledger.catalog import KEEP_VERSION
from ledger.failures import Backoff
from ledger.programs import program_values
from ledger.reconcile import reconcile
from ledger.schema import Base, Program
from rules import CardTransaction
from streams.decoding import RawMessage
from streams.service import StampingService
from tests.conftest import examples
from tests.ledger.histories import Scenario, deliveries, describe, distinct, scenarios
from tests.ledger.model import Model
from tests.ledger.test_planner_against_model import model_state
from tests.streams.conftest import Ledger


def _reset(engine: Engine, scenario: Scenario) -> None:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        for program in scenario.programs.values():
            conn.execute(insert(Program).values(**program_values(program)))
            conn.execute(KEEP_VERSION, {"id": program.id})  # as applying it keeps it
        for e in scenario.enrollments:
            conn.execute(
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


def _messages(batch: list[CardTransaction], offsets: list[int]) -> list[RawMessage]:
    found = []
    for tx in batch:
        offsets.append(len(offsets))
        value = tx.model_dump_json().encode()
        found.append(RawMessage("transactions", 0, offsets[-1], tx.member_id.encode(), value))
    return found


def ledger_state(ledger: Ledger) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for c in ledger.rows("SELECT * FROM stamp_collections ORDER BY id"):
        state[c.id] = {
            "counter": (c.unredeemed_purchases, c.owed_stamps, c.cycle),
            "stamps": {
                s.purchase_id: (s.status, s.transaction_id, s.void_transaction_id)
                for s in ledger.rows("SELECT * FROM stamps WHERE collection_id = :c", c=c.id)
            },
            "rewards": {
                r.cycle: (r.amount, r.currency, r.transaction_id)
                for r in ledger.rows("SELECT * FROM rewards WHERE collection_id = :c", c=c.id)
            },
        }
    return state


@settings(
    max_examples=examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_postgres_reaches_the_state_of_the_model_whatever_the_delivery(
    engine: Engine, database_url: str, ledger: Ledger, data: st.DataObject
) -> None:
    scenario = data.draw(scenarios())
    batches = data.draw(deliveries(scenario.events))
    note(describe(scenario, batches))
    _reset(engine, scenario)

    async def run() -> None:
        async_engine = create_async_engine(database_url)
        service = StampingService(async_engine, backoff=Backoff(attempts=2, first_delay_s=0.01))
        offsets: list[int] = []
        for batch in batches:
            await service.stamp(_messages(batch, offsets))
        async with async_engine.begin() as conn:
            differences = (await reconcile(conn)).differences
        await async_engine.dispose()
        assert differences == []

    asyncio.run(run())
    model = Model(scenario.programs, scenario.enrollments).apply(distinct(batches))
    assert ledger_state(ledger) == model_state(model)
