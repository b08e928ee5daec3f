"""Adjustments meet the worker's purchases: one count, one set of rewards, reconciled."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from autostamp.settings import TopicSettings
from ledger.adjustments import AdjustmentRecord, adjust_collection
from ledger.database import transaction
from ledger.errors import AdjustmentRefused
from ledger.idempotency import IdempotencyKeyReused
from streams.kafka import KafkaPublisher, ProducerRecord
from tests.streams.conftest import Ledger
from tests.streams.factories import enroll, messages, program, signed, tx, undo
from tests.streams.worker import WorkerProcess, wait_for
from tests.support.reconciling import assert_reconciled

MakeService = Callable[..., Any]
NOW = datetime(2026, 3, 3, tzinfo=UTC)


async def _adjust(
    engine: AsyncEngine, collection_id: str, delta: int, key: str, reason: str = "ticket 1"
) -> AdjustmentRecord:
    async with transaction(engine) as conn:
        return await adjust_collection(conn, collection_id, delta, reason, key, None, NOW)


FIXED = {"type": "fixed-reward", "amount": 500, "currency": "GBP"}


@pytest.mark.usefixtures("subscriber")
async def test_an_addition_completing_cycles_rewards_each_once_and_a_retry_changes_nothing(
    engine: Engine,
    database_url: str,
    async_engine: AsyncEngine,
    make_service: MakeService,
    ledger: Ledger,
) -> None:
    service = await make_service(program(threshold=3, reward=FIXED))
    sc = enroll(engine)
    await service.stamp(messages(tx("t1", amount=450), tx("t2", amount=700)))

    first = await _adjust(async_engine, sc, 5, "k1")
    again = await _adjust(async_engine, sc, 5, "k1")

    # 2 stamps + 5 = 7: two cycles of 3 completed, 1 carried; both name t2, the latest.
    assert ledger.counter(sc) == (1, 0, 3)
    assert ledger.rewards(sc) == [(1, "t2", 500), (2, "t2", 500)]
    assert again.replayed and again.reward_ids == first.reward_ids and len(first.reward_ids) == 2
    assert sorted(ledger.events()).count("reward.triggered") == 2
    assert ledger.events().count("stamp.adjusted") == 1
    await service.stamp(messages(tx("t3"), tx("t4")))
    assert ledger.counter(sc) == (0, 0, 4)
    assert_reconciled(database_url)


async def test_a_deduction_lowers_the_count_and_beyond_it_leaves_a_debt_never_a_negative_count(
    engine: Engine,
    database_url: str,
    async_engine: AsyncEngine,
    make_service: MakeService,
    ledger: Ledger,
) -> None:
    service = await make_service(program(threshold=3))
    sc = enroll(engine)
    await service.stamp(messages(tx("t1"), tx("t2"), tx("t3"), tx("t4"), tx("t5")))
    assert ledger.counter(sc) == (2, 0, 2)

    await _adjust(async_engine, sc, -1, "within")
    assert ledger.counter(sc) == (1, 0, 2)
    await _adjust(async_engine, sc, -3, "beyond")
    assert ledger.counter(sc) == (0, 2, 2)
    assert len(ledger.rewards(sc)) == 1  # the paid cycle is never taken back

    # The next cycle needs the two owed stamps first: 5 purchases to the next reward.
    await service.stamp(messages(*(tx(f"n{i}") for i in range(4)), undo("r1", "n0")))
    assert ledger.counter(sc) == (1, 0, 2)
    assert_reconciled(database_url)


async def test_the_same_key_with_another_delta_or_reason_is_refused_and_changes_nothing(
    engine: Engine, async_engine: AsyncEngine, make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(program(threshold=3, reward=FIXED))
    sc = enroll(engine)
    await service.stamp(messages(tx("t1")))
    await _adjust(async_engine, sc, 1, "k")

    with pytest.raises(IdempotencyKeyReused):
        await _adjust(async_engine, sc, 2, "k")
    with pytest.raises(IdempotencyKeyReused):
        await _adjust(async_engine, sc, 1, "k", reason="another reason")
    assert ledger.counter(sc) == (2, 0, 1)


async def test_a_refund_program_takes_deductions_but_no_added_stamps(
    engine: Engine, async_engine: AsyncEngine, make_service: MakeService, ledger: Ledger
) -> None:
    # Its rewards pay back purchases: a cycle of added stamps would pay one back twice.
    service = await make_service(program(threshold=3))
    sc = enroll(engine)
    await service.stamp(messages(tx("t1"), tx("t2"), tx("t3"), tx("t4")))
    with pytest.raises(AdjustmentRefused, match="send the missed purchase"):
        await _adjust(async_engine, sc, 2, "added")
    assert ledger.counter(sc) == (1, 0, 2)
    await _adjust(async_engine, sc, -1, "taken")
    assert ledger.counter(sc) == (0, 0, 2)
    assert ledger.rewards(sc) == [(1, "t3", 450)]


async def test_an_addition_with_no_purchase_to_pay_for_may_not_complete_a_cycle(
    engine: Engine, async_engine: AsyncEngine, make_service: MakeService, ledger: Ledger
) -> None:
    await make_service(program(threshold=3, reward=FIXED))
    sc = enroll(engine)

    await _adjust(async_engine, sc, 2, "short")
    with pytest.raises(AdjustmentRefused):
        await _adjust(async_engine, sc, 1, "completes")
    assert ledger.counter(sc) == (2, 0, 1)
    assert ledger.rewards(sc) == []


async def test_adjustments_and_worker_batches_on_one_collection_take_turns(
    engine: Engine,
    database_url: str,
    async_engine: AsyncEngine,
    make_service: MakeService,
    ledger: Ledger,
) -> None:
    service = await make_service(program(threshold=4, reward=FIXED))
    sc = enroll(engine)
    await service.stamp(messages(tx("t0")))

    batches = [service.stamp(messages(tx(f"t{i}a"), tx(f"t{i}b"))) for i in range(1, 6)]
    adjustments = [_adjust(async_engine, sc, 3, f"k{i}") for i in range(5)]
    await asyncio.gather(*batches, *adjustments)

    # 1 + 10 purchases + 15 adjusted = 26 stamps: six cycles of 4, two carried.
    assert ledger.counter(sc) == (2, 0, 7)
    assert [r[0] for r in ledger.rewards(sc)] == [1, 2, 3, 4, 5, 6]
    assert_reconciled(database_url)


def test_the_command_line_adjusts_once_per_key_and_records_no_api_key(
    engine: Engine, database_url: str, ledger: Ledger
) -> None:
    from tests.streams.factories import save_programs

    save_programs(engine, program(threshold=3, reward=FIXED))
    sc = enroll(engine)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "autostamp", "adjust", *args],
            env=os.environ | {"DATABASE_URL": database_url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    added = run(sc, "2", "--reason", "missed purchase", "--idempotency-key", "t-1")
    again = run(sc, "2", "--reason", "missed purchase", "--idempotency-key", "t-1")
    taken = run(sc, "-3", "--reason", "duplicate goodwill", "--idempotency-key", "t-2")
    reused = run(sc, "1", "--reason", "missed purchase", "--idempotency-key", "t-1")

    assert added.returncode == 0, added.stderr
    assert "made: delta=+2" in added.stdout and "already made" in again.stdout
    assert taken.returncode == 0 and "owed_stamps=1" in taken.stdout
    assert reused.returncode == 1 and "another delta or reason" in reused.stderr
    assert ledger.counter(sc) == (0, 1, 1)
    keys = ledger.rows("SELECT api_key_id FROM stamp_adjustments")
    assert [k.api_key_id for k in keys] == [None, None]
    assert_reconciled(database_url)


@pytest.mark.kafka
async def test_a_running_worker_and_adjustments_share_one_count_and_one_set_of_rewards(
    engine: Engine,
    database_url: str,
    async_engine: AsyncEngine,
    kafka_bootstrap: str,
    topics: TopicSettings,
    ledger: Ledger,
    worker: WorkerProcess,
) -> None:
    publisher = KafkaPublisher({"bootstrap.servers": kafka_bootstrap})
    publisher.publish(signed(topics.programs, program(threshold=3, reward=FIXED)))
    wait_for(lambda: ledger.scalar("SELECT count(*) FROM programs") == 1, 60, "program")
    sc = enroll(engine)

    def send(*bodies: dict[str, Any]) -> None:
        publisher.publish(
            [ProducerRecord(topics.transactions, orjson.dumps(b), b"m1") for b in bodies]
        )

    def stamped(n: int) -> None:
        wait_for(lambda: len(ledger.live_stamps(sc)) == n, 60, f"{n} stamps", worker.log())

    send(tx("t1"))
    stamped(1)
    await _adjust(async_engine, sc, 1, "missed-1")
    send(tx("t2"), tx("t1"))  # t2 completes the cycle; t1 again changes nothing
    stamped(2)
    wait_for(lambda: len(ledger.rewards(sc)) == 1, 60, "the first reward", worker.log())
    await _adjust(async_engine, sc, 4, "goodwill")  # completes cycle 2, one carried
    send(tx("t3"))
    stamped(3)

    assert ledger.rewards(sc) == [(1, "t2", 500), (2, "t2", 500)]
    assert ledger.counter(sc) == (2, 0, 3)
    assert_reconciled(database_url)
