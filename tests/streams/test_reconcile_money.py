"""`autostamp reconcile` checks what the money needs: each reward pays its purchase once and
what its program version pays, for a counted purchase; each stamp is of a purchase made after
the enrollment, under the daily cap, voided only by its own purchase's undo.

Each check is shown a ledger written by the worker with one thing planted in its rows, and
finds it; a ledger written by the use cases alone, across edits, finds nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.adjustments import adjust_collection
from ledger.collections import enroll as enroll_member
from ledger.database import transaction
from ledger.failures import Backoff
from ledger.programs import apply_definition
from ledger.pseudonyms import Pseudonyms
from ledger.unenrolling import unenroll
from rules import ProgramDefinition
from streams.service import StampingService
from tests.streams.conftest import Ledger
from tests.streams.factories import T0, enroll, messages, program, tx, undo
from tests.support.reconciling import reconcile
from tests.webhooks.support import TEST_KEYRING

GBP = {"currencies": ["GBP"]}

PSEUDONYMS = Pseudonyms.of(TEST_KEYRING)


def capped_refund(max_amount: int) -> dict[str, Any]:
    return {"type": "refund", "max_amount": max_amount, "currency": "GBP"}


def version(definition: ProgramDefinition, number: int) -> ProgramDefinition:
    """The definition as a later version of its program, to apply over an earlier one."""
    return definition.model_copy(update={"version": number})


async def apply(engine: AsyncEngine, *definitions: ProgramDefinition) -> None:
    """Apply definitions as the program sync does: each version is kept."""
    async with transaction(engine) as conn:
        for definition in definitions:
            await apply_definition(conn, definition, datetime.now(UTC))


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


async def test_a_stamp_of_a_purchase_made_before_the_enrollment_is_reported(
    engine: Engine, async_engine: AsyncEngine, database_url: str
) -> None:
    await apply(async_engine, program(threshold=5))
    sc = enroll(engine)
    await service(async_engine).stamp(messages(tx("t1", at=T0 + timedelta(hours=1))))

    plant(engine, f"UPDATE stamp_collections SET created_at = '{T0 + timedelta(hours=2)}'")

    assert reported(database_url) == [("stamp before enrollment", f"{sc}/t1")]


async def test_a_day_with_more_live_stamps_than_the_cap_is_reported(
    engine: Engine, async_engine: AsyncEngine, database_url: str
) -> None:
    await apply(async_engine, program(threshold=5, daily_cap_per_member=1))
    sc = enroll(engine)
    hours = (T0 + timedelta(hours=1), T0 + timedelta(hours=2))
    await service(async_engine).stamp(messages(*(tx(f"t{n}", at=h) for n, h in enumerate(hours))))

    plant(
        engine,
        "UPDATE stamps SET status = 'live' WHERE status = 'capped'",
        "UPDATE stamp_collections SET unredeemed_purchases = 2",
    )

    assert reported(database_url) == [("day over the cap", f"{sc}/{T0.date()}")]


async def test_a_stamp_voided_by_the_undo_of_another_purchase_is_reported(
    engine: Engine, async_engine: AsyncEngine, database_url: str
) -> None:
    await apply(async_engine, program(threshold=5))
    sc = enroll(engine)
    await service(async_engine).stamp(messages(tx("t1"), tx("t2"), undo("r1", "t1")))

    plant(
        engine,
        "UPDATE stamps SET status = 'voided', voided_at = now(), void_transaction_id = 'r1' "
        "WHERE purchase_id = 't2'",
        "UPDATE stamp_collections SET unredeemed_purchases = 0",
    )

    assert reported(database_url) == [("void not of its purchase", f"{sc}/t2")]


async def test_a_stamp_kept_under_keep_is_no_difference_after_an_edit_to_void(
    engine: Engine, async_engine: AsyncEngine, database_url: str, ledger: Ledger
) -> None:
    await apply(async_engine, program(threshold=5, partial_refunds="keep"))
    sc = enroll(engine)
    partial = tx("r1", amount=100, type="refund", original_id="t1")
    await service(async_engine).stamp(messages(tx("t1", amount=450), partial))

    await apply(async_engine, version(program(threshold=5, partial_refunds="void"), 2))

    assert ledger.live_stamps(sc) == ["t1"]
    assert reported(database_url) == []


MONDAY = datetime(2030, 1, 7, tzinfo=UTC)  # after any enrollment the test makes now


async def test_a_ledger_made_by_the_use_cases_across_edits_reconciles_with_no_difference(
    engine: Engine, async_engine: AsyncEngine, database_url: str, ledger: Ledger
) -> None:
    refund = program("lp_refund", 2, capped_refund(500), partial_refunds="keep", **GBP)
    fixed = program("lp_fixed", 3, {"type": "fixed-reward", "amount": 300, "currency": "GBP"})
    capped = program("lp_capped", 5, daily_cap_per_member=1)
    twin = program("lp_twin", 2)  # another offer: it pays back the same purchases again
    await apply(async_engine, refund, fixed, capped, twin)
    async with transaction(async_engine) as conn:
        ids = {
            p.id: (await enroll_member(conn, p.id, "m1", PSEUDONYMS)).id
            for p in (refund, fixed, capped)
        }
        ids["lp_twin"] = (await enroll_member(conn, "lp_twin", "m1", PSEUDONYMS)).id
        await enroll_member(conn, "lp_refund", "m2", PSEUDONYMS)
    worker = service(async_engine)

    def at(hours: int) -> datetime:
        return MONDAY + timedelta(hours=hours)

    # Rewards for t2 in lp_refund and lp_twin; lp_capped caps t2.
    await worker.stamp(messages(tx("t1", at=at(10)), tx("t2", amount=800, at=at(12))))
    # A partial refund: kept in lp_refund, void elsewhere, after the twin's reward (a debt);
    # lp_capped promotes t2. The same id from another member is another purchase.
    partial = tx("r1", amount=100, type="refund", original_id="t1", at=at(13))
    await worker.stamp(messages(partial, tx("t1", member="m2", at=at(10))))
    async with transaction(async_engine) as conn:
        now = datetime.now(UTC)
        await adjust_collection(conn, ids["lp_fixed"], 2, "missed stamps", "k1", None, now)
        await unenroll(conn, ids["lp_twin"], now)
        await enroll_member(conn, "lp_twin", "m1", PSEUDONYMS)
    # The cap's clock moves to Tokyo, where 17:00 UTC is Tuesday: t3 is live beside t2, on
    # Monday by UTC. A higher cap for refunds pays t4 more than version 1 would have.
    await apply(
        async_engine,
        version(program("lp_capped", 5, daily_cap_per_member=1, timezone="Asia/Tokyo"), 2),
    )
    await apply(
        async_engine,
        version(program("lp_refund", 2, capped_refund(600), partial_refunds="keep", **GBP), 2),
    )
    await worker.stamp(messages(tx("t3", at=at(17)), tx("t4", amount=900, at=at(18))))

    result = reconcile(database_url)

    assert result["differences"] == []
    assert (result["rewards"], result["unversioned_rewards"]) == (5, 0)
    assert ledger.rows(
        "SELECT amount, program_version FROM rewards WHERE collection_id = :c ORDER BY cycle",
        c=ids["lp_refund"],
    ) == [(500, 1), (600, 2)]
    assert ledger.live_stamps(ids["lp_capped"]) == ["t2", "t3"]


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
