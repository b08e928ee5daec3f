"""A program change and whatever it races take turns on the programs lock: a change holds it
exclusively, batches and adjustments share it, and each reads the programs only once it
holds it, so none judges by a definition that another has replaced in the meantime."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.adjustments import AdjustmentRecord, adjust_collection
from ledger.database import transaction
from ledger.programs import apply_definition
from rules import ProgramDefinition
from tests.streams.conftest import Ledger
from tests.streams.factories import enroll, messages, program, tx
from tests.support.locks import until_waiting_for_programs

MakeService = Callable[..., Any]
NOW = datetime(2026, 3, 3, tzinfo=UTC)
FIXED = {"type": "fixed-reward", "amount": 500, "currency": "GBP"}


def version(threshold: int, number: int) -> ProgramDefinition:
    return program(threshold=threshold, reward=FIXED).model_copy(update={"version": number})


async def change(engine: AsyncEngine, definition: ProgramDefinition) -> None:
    async with transaction(engine) as conn:
        await apply_definition(conn, definition, NOW)


async def adjust(engine: AsyncEngine, collection_id: str, delta: int) -> AdjustmentRecord:
    async with transaction(engine) as conn:
        return await adjust_collection(conn, collection_id, delta, "ticket 1", "k1", None, NOW)


async def test_a_batch_that_waited_for_a_program_change_stamps_by_the_changed_program(
    engine: Engine, async_engine: AsyncEngine, make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(version(3, 1))
    sc = enroll(engine)
    await service.stamp(messages(tx("t1")))

    async with transaction(async_engine) as raising:
        await apply_definition(raising, version(10, 2), NOW)
        batch = asyncio.create_task(service.stamp(messages(*(tx(f"t{i}") for i in range(2, 7)))))
        await until_waiting_for_programs(async_engine, 1, 10)
    await batch

    # Six stamps: a cycle of 10 under way, not two of 3 rewarded.
    assert ledger.counter(sc) == (6, 0, 1)
    assert ledger.rewards(sc) == []


async def test_a_lowered_threshold_settles_the_counts_stamped_while_it_waited_for_the_lock(
    engine: Engine, async_engine: AsyncEngine, make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(version(3, 1))
    sc = enroll(engine)
    await service.stamp(messages(tx("t1")))

    async with transaction(async_engine) as raising:
        await apply_definition(raising, version(10, 2), NOW)
        # A batch queues for the lock first, then a change lowering the threshold to 5.
        batch = asyncio.create_task(service.stamp(messages(*(tx(f"t{i}") for i in range(2, 7)))))
        await until_waiting_for_programs(async_engine, 1, 10)
        lowering = asyncio.create_task(change(async_engine, version(5, 3)))
        await until_waiting_for_programs(async_engine, 2, 10)
    await batch  # 6 stamps under the threshold of 10
    await lowering

    # Lowered from 10, not from the 3 committed when the change started: one cycle complete.
    assert ledger.counter(sc) == (1, 0, 2)
    assert [cycle for cycle, _, _ in ledger.rewards(sc)] == [1]


async def test_an_adjustment_waits_for_a_program_change_and_counts_by_its_threshold(
    engine: Engine, async_engine: AsyncEngine, make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(version(5, 1))
    sc = enroll(engine)
    await service.stamp(messages(tx("t1")))

    async with transaction(async_engine) as lowering:
        await apply_definition(lowering, version(3, 2), NOW)
        adjusting = asyncio.create_task(adjust(async_engine, sc, 2))
        await until_waiting_for_programs(async_engine, 1, 10)
    made = await adjusting

    # 1 + 2 = 3 completes a cycle of the new threshold; under the old one it would sit at 3.
    assert (made.unredeemed_purchases, made.cycle, len(made.reward_ids)) == (0, 2, 1)
    assert ledger.counter(sc) == (0, 0, 2)
