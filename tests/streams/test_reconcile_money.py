"""`autostamp reconcile` checks what the money needs: each reward pays its purchase once and
what its program version pays, for a counted purchase.

Each check is shown a ledger written by the worker with one thing planted in its rows, and
finds it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.database import transaction
from ledger.failures import Backoff
from ledger.programs import apply_definitions
from rules import ProgramDefinition
from streams.service import StampingService
from tests.streams.conftest import Ledger
from tests.streams.factories import enroll, messages, program, tx, undo
from tests.support.reconciling import reconcile

GBP = {"currencies": ["GBP"]}


def capped_refund(max_amount: int) -> dict[str, Any]:
    return {"type": "refund", "max_amount": max_amount, "currency": "GBP"}


def version(definition: ProgramDefinition, number: int) -> ProgramDefinition:
    """The definition as a later version of its program, to apply over an earlier one."""
    return definition.model_copy(update={"version": number})


async def apply(engine: AsyncEngine, *definitions: ProgramDefinition) -> None:
    """Apply definitions as the program sync does: each version is kept."""
    async with transaction(engine) as conn:
        await apply_definitions(conn, definitions, datetime.now(UTC))


def service(engine: AsyncEngine) -> StampingService:
    return StampingService(engine, backoff=Backoff(attempts=2, first_delay_s=0.01))


def plant(engine: Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


def reported(database_url: str) -> list[tuple[str, str]]:
    """Each difference `reconcile` reports, as (kind, subject)."""
    differences = reconcile(database_url)["differences"]
    assert isinstance(differences, list)
    return [(d["kind"], d["subject"]) for d in differences]


def reward_of(ledger: Ledger, cycle: int) -> str:
    return str(ledger.scalar("SELECT id FROM rewards WHERE cycle = :cycle", cycle=cycle))


async def test_a_purchase_paid_back_by_two_refunds_of_one_program_is_reported(
    engine: Engine, async_engine: AsyncEngine, database_url: str
) -> None:
    await apply(async_engine, program(threshold=1))
    enroll(engine)
    await service(async_engine).stamp(messages(tx("t1"), tx("t2")))

    plant(engine, "UPDATE rewards SET purchase_id = 't1', transaction_id = 't1' WHERE cycle = 2")

    assert reported(database_url) == [("purchase paid back twice", "lp_coffee/t1")]


async def test_a_reward_is_judged_by_the_program_version_it_was_triggered_under(
    engine: Engine, async_engine: AsyncEngine, database_url: str, ledger: Ledger
) -> None:
    await apply(async_engine, program(threshold=1, reward=capped_refund(300), **GBP))
    enroll(engine)
    await service(async_engine).stamp(messages(tx("t1", amount=450)))
    raised = program(threshold=1, reward=capped_refund(400), **GBP)
    await apply(async_engine, version(raised, 2))
    await service(async_engine).stamp(messages(tx("t2", amount=450)))
    assert reported(database_url) == []

    # What version 2 pays, but the first reward was triggered under version 1's cap.
    plant(engine, "UPDATE rewards SET amount = 400 WHERE cycle = 1")

    assert reported(database_url) == [("reward amount", reward_of(ledger, 1))]


async def test_a_reward_for_a_purchase_voided_before_it_is_reported(
    engine: Engine, async_engine: AsyncEngine, database_url: str, ledger: Ledger
) -> None:
    await apply(async_engine, program(threshold=2))
    enroll(engine)
    await service(async_engine).stamp(messages(tx("t1"), undo("r1", "t1")))
    await service(async_engine).stamp(messages(tx("t2"), tx("t3")))

    plant(engine, "UPDATE rewards SET purchase_id = 't1', transaction_id = 't1'")

    assert reported(database_url) == [("reward for an uncounted purchase", reward_of(ledger, 1))]


async def test_a_reward_made_before_versions_were_kept_is_counted_not_judged_by_the_current_one(
    engine: Engine, async_engine: AsyncEngine, database_url: str
) -> None:
    await apply(async_engine, program(threshold=1, reward=capped_refund(300), **GBP))
    enroll(engine)
    await service(async_engine).stamp(messages(tx("t1", amount=450)))
    await apply(async_engine, version(program(threshold=1, reward=capped_refund(400), **GBP), 2))

    plant(engine, "UPDATE rewards SET program_version = NULL")

    result = reconcile(database_url)
    assert (result["differences"], result["unversioned_rewards"]) == ([], 1)
