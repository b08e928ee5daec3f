"""Histories that once paid a purchase back twice or kept a refunded stamp, through PostgreSQL.

Each is a history a bank and a publisher can produce: edits mid-cycle, erasure, reused ids,
enrolling again. Each asserts what docs/stamping.md says must hold, and that `reconcile`
finds the ledger whole.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.adjustments import adjust_collection
from ledger.batch import Source
from ledger.database import transaction
from ledger.erasure import erase_member
from ledger.programs import Verdict
from ledger.pseudonyms import Pseudonyms
from ledger.reconcile import reconcile
from ledger.unenrolling import unenroll
from rules import ProgramDefinition
from streams.service import StampingService
from tests.streams.conftest import Ledger
from tests.streams.factories import T0, enroll, messages, program, tx, undo
from tests.webhooks.support import TEST_KEYRING

MakeService = Callable[..., Any]
DAY = timedelta(days=1)
FIXED = {"type": "fixed-reward", "amount": 500, "currency": "GBP"}


def version(definition: ProgramDefinition, n: int, **changes: Any) -> ProgramDefinition:
    """Version `n` of the program, with `changes` (and `rules=` changes of its rules)."""
    data = definition.model_dump(mode="json")
    data["rules"].update(changes.pop("rules", {}))
    return ProgramDefinition.model_validate({**data, **changes, "version": n})


async def apply(service: StampingService, *definitions: ProgramDefinition) -> list[str]:
    at = [Source("programs", 0, offset) for offset in range(len(definitions))]
    judged = await service.judge_programs(list(zip(definitions, at, strict=True)), [])
    assert judged.refused == []
    return judged.ids(Verdict.APPLIED)


async def assert_reconciled(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert (await reconcile(conn)).differences == []


def refunds_paid(ledger: Ledger, collection_id: str) -> list[tuple[str | None, int]]:
    rows = ledger.rows(
        "SELECT purchase_id, amount FROM rewards WHERE collection_id = :id ORDER BY cycle",
        id=collection_id,
    )
    return [(r.purchase_id, r.amount) for r in rows]


async def test_a_promoted_stamp_not_an_already_paid_one_is_paid_by_a_lowered_threshold(
    engine: Engine, async_engine: AsyncEngine, make_service: MakeService, ledger: Ledger
) -> None:
    capped = program(threshold=2, daily_cap_per_member=1)
    service = await make_service(capped)
    sc = enroll(engine)
    day1, day2 = T0 + timedelta(hours=1), T0 + DAY
    # Day 1: A counts, B is capped. Day 2: C completes the cycle and is paid back.
    await service.stamp(messages(tx("A", amount=100, at=day1), tx("B", amount=200, at=day1)))
    await service.stamp(messages(tx("C", amount=300, at=day2)))
    assert refunds_paid(ledger, sc) == [("C", 300)]
    # The cap is raised; X of day 1 arrives late and counts; its refund frees day 1 for B.
    await apply(service, version(capped, 2, rules={"daily_cap_per_member": 2}))
    await service.stamp(messages(tx("X", amount=400, at=day1 + timedelta(minutes=5))))
    await service.stamp(messages(undo("rX", "X")))
    assert ledger.counter(sc) == (1, 0, 2)
    await apply(service, version(capped, 3, qualifying_threshold=1))
    assert refunds_paid(ledger, sc) == [("C", 300), ("B", 200)]
    await assert_reconciled(async_engine)


async def test_a_switch_to_refund_pays_the_one_purchase_back_once_whatever_stamps_were_added(
    engine: Engine, async_engine: AsyncEngine, make_service: MakeService, ledger: Ledger
) -> None:
    fixed = program(threshold=10, reward=FIXED)
    service = await make_service(fixed)
    sc = enroll(engine)
    await service.stamp(messages(tx("P", amount=5000)))
    async with transaction(async_engine) as conn:
        await adjust_collection(conn, sc, 8, "missed visits", "k1", None, datetime.now(UTC))
    assert ledger.counter(sc) == (9, 0, 1)
    await apply(
        service, version(fixed, 2, qualifying_threshold=3, reward_config={"type": "refund"})
    )
    assert refunds_paid(ledger, sc) == [("P", 5000), (None, 0), (None, 0)]
    assert ledger.counter(sc) == (0, 0, 4)
    await assert_reconciled(async_engine)


async def test_a_refund_naming_an_auth_below_the_minimum_voids_the_clearing_that_met_it(
    engine: Engine, async_engine: AsyncEngine, make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(program(threshold=5, min_amount=2000, currencies=["GBP"]))
    auth = tx("a1", amount=1800, type="auth", purchase_id="P1")
    clearing = tx("c1", amount=2100, purchase_id="P1")
    auth2 = tx("a2", amount=1800, type="auth", purchase_id="P2")
    clearing2 = tx("c2", amount=2100, purchase_id="P2")
    sc = enroll(engine)
    await service.stamp(messages(auth, clearing, undo("r1", "a1")))
    await service.stamp(messages(undo("r2", "a2"), auth2, clearing2))
    assert ledger.live_stamps(sc) == []
    assert ledger.counter(sc) == (0, 0, 1)
    await assert_reconciled(async_engine)


async def test_a_refund_sent_after_the_member_was_erased_still_voids_their_purchase(
    engine: Engine, async_engine: AsyncEngine, make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(program(threshold=5), pseudonyms=Pseudonyms.of(TEST_KEYRING))
    sc = enroll(engine, member="m-erased")
    await service.stamp(messages(tx("t1", member="m-erased"), tx("t2", member="m-erased")))
    async with transaction(async_engine) as conn:
        await erase_member(conn, TEST_KEYRING, "m-erased", datetime.now(UTC))
    await service.stamp(messages(undo("r1", "t1", member="m-erased")))
    assert ledger.live_stamps(sc) == ["t2"]
    assert ledger.counter(sc) == (1, 0, 1)
    # Erased collections stamp nothing new, and erasing again has nothing left to rename.
    await service.stamp(messages(tx("t3", member="m-erased")))
    assert ledger.live_stamps(sc) == ["t2"]
    assert ledger.scalar("SELECT count(*) FROM stamp_collections WHERE unenrolled_at IS NULL") == 0
    async with transaction(async_engine) as conn:
        again = await erase_member(conn, TEST_KEYRING, "m-erased", datetime.now(UTC))
    assert set(again.counts().values()) == {0}
    await assert_reconciled(async_engine)


async def test_two_members_events_never_collide_even_under_one_id(
    engine: Engine, async_engine: AsyncEngine, make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(program(threshold=5))
    a, b = enroll(engine, member="mA"), enroll(engine, member="mB")
    await service.stamp(
        messages(
            tx("auth-1", member="mA", type="auth", purchase_id="PA"),
            tx("clear-A", member="mA", purchase_id="PA"),
        )
    )
    # Bank B reuses bank A's ids for member B's purchase and for the undo.
    await service.stamp(messages(tx("auth-1", member="mB", type="auth", purchase_id="PB")))
    await service.stamp(messages(tx("clear-B", member="mB", purchase_id="PB")))
    await service.stamp(messages(undo("undo-1", "auth-1", member="mA")))
    await service.stamp(messages(undo("undo-1", "auth-1", member="mB")))
    assert (ledger.live_stamps(a), ledger.live_stamps(b)) == ([], [])
    assert ledger.scalar("SELECT count(*) FROM purchase_events WHERE id = 'auth-1'") == 2
    assert ledger.scalar("SELECT count(*) FROM undos WHERE id = 'undo-1'") == 2
    await assert_reconciled(async_engine)


async def test_a_kept_purchase_is_paid_back_what_its_partial_refunds_left(
    engine: Engine, async_engine: AsyncEngine, make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(program(threshold=1, partial_refunds="keep"))
    sc = enroll(engine)
    partial = tx("r1", type="refund", original_id="P", amount=999)
    await service.stamp(messages(partial))
    await service.stamp(messages(tx("P", amount=1000)))
    assert ledger.live_stamps(sc) == ["P"]
    assert refunds_paid(ledger, sc) == [("P", 1)]
    await assert_reconciled(async_engine)


async def test_a_purchase_made_before_enrolling_again_never_stamps_the_new_collection(
    engine: Engine, async_engine: AsyncEngine, make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(program(threshold=1))
    first = tx("ship-1", purchase_id="P", amount=300, at=T0 + timedelta(hours=1))
    second = tx("ship-2", purchase_id="P", amount=200, at=T0 + timedelta(hours=6))
    # In arrival order: the first shipment, then the member leaves and enrolls again.
    old = enroll(engine, member="m1")
    await service.stamp(messages(first))
    async with transaction(async_engine) as conn:
        await unenroll(conn, old, T0 + timedelta(hours=2))
    new = enroll_again(engine, "m1", "sc_again", T0 + timedelta(hours=3))
    await service.stamp(messages(second))
    assert (refunds_paid(ledger, old), refunds_paid(ledger, new)) == ([("P", 300)], [])
    # The second shipment first: it stamps the new collection until the first shows the
    # purchase happened before it was enrolled.
    late = enroll_again(engine, "m2", "sc_m2_again", T0 + timedelta(hours=3))
    await service.stamp(
        messages(tx("s2", member="m2", purchase_id="Q", at=T0 + timedelta(hours=6)))
    )
    assert ledger.live_stamps(late) == ["Q"]
    await service.stamp(
        messages(tx("s1", member="m2", purchase_id="Q", at=T0 + timedelta(hours=1)))
    )
    assert ledger.live_stamps(late) == []
    assert ledger.counter(late) == (0, 1, 2)  # its reward stays paid: the next cycle owes one
    await assert_reconciled(async_engine)


def enroll_again(engine: Engine, member: str, collection_id: str, at: datetime) -> str:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO stamp_collections (id, program_id, member_id, created_at) "
                "VALUES (:id, 'lp_coffee', :member, :at)"
            ),
            {"id": collection_id, "member": member, "at": at},
        )
    return collection_id


async def test_a_capped_stamp_of_an_unenrolled_collection_is_never_promoted(
    engine: Engine, async_engine: AsyncEngine, make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(program(threshold=5, daily_cap_per_member=1))
    sc = enroll(engine)
    await service.stamp(messages(tx("t1"), tx("t2")))
    async with transaction(async_engine) as conn:
        await unenroll(conn, sc, datetime.now(UTC))
    await service.stamp(messages(undo("r1", "t1")))
    assert ledger.live_stamps(sc) == []
    assert ledger.counter(sc) == (0, 0, 1)
    await assert_reconciled(async_engine)


async def test_a_lowered_cap_keeps_its_live_stamps_and_promotes_nothing_above_it(
    engine: Engine, async_engine: AsyncEngine, make_service: MakeService, ledger: Ledger
) -> None:
    capped = program(threshold=9, daily_cap_per_member=3)
    service = await make_service(capped)
    sc = enroll(engine)
    await service.stamp(messages(*(tx(f"t{n}", at=T0 + timedelta(minutes=n)) for n in range(5))))
    await apply(service, version(capped, 2, rules={"daily_cap_per_member": 1}))
    await service.stamp(messages(undo("r0", "t0")))
    assert ledger.live_stamps(sc) == ["t1", "t2"]
    assert ledger.counter(sc) == (2, 0, 1)
    await assert_reconciled(async_engine)


async def test_a_settlement_with_no_live_stamp_still_ends_below_the_threshold(
    engine: Engine, async_engine: AsyncEngine, make_service: MakeService, ledger: Ledger
) -> None:
    fixed = program(threshold=5, reward=FIXED)
    service = await make_service(fixed)
    sc = enroll(engine)
    await service.stamp(messages(tx("t1")))
    async with transaction(async_engine) as conn:
        await adjust_collection(conn, sc, 2, "missed visits", "k1", None, datetime.now(UTC))
    await service.stamp(messages(undo("r1", "t1")))
    assert ledger.counter(sc) == (2, 0, 1)
    await apply(service, version(fixed, 2, qualifying_threshold=2))
    assert ledger.counter(sc) == (0, 0, 2)
    assert refunds_paid(ledger, sc) == [(None, 500)]
    await assert_reconciled(async_engine)


OTHER_MEMBERS_STAMPED = (
    """
    INSERT INTO stamp_collections (id, program_id, member_id, created_at)
    SELECT 'sc_other_' || n, 'lp_coffee', 'other_' || n, :at FROM generate_series(1, 1001) AS n
    """,
    """
    INSERT INTO stamps (collection_id, purchase_id, transaction_id, cycle, amount, currency,
                        merchant_id, merchant_name, occurred_at)
    SELECT 'sc_other_' || n, 'P', 'P', 1, 450, 'GBP', 'mer_bean', 'Bean', :at
    FROM generate_series(1, 1001) AS n
    """,
)


async def test_a_purchase_id_shared_by_a_thousand_other_members_still_finds_this_ones_stamp(
    engine: Engine, async_engine: AsyncEngine, make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(program(threshold=5))
    with engine.begin() as conn:
        for sql in OTHER_MEMBERS_STAMPED:
            conn.execute(text(sql), {"at": T0})
    sc = enroll(engine, member="m-last", at=T0 + timedelta(minutes=1))
    await service.stamp(messages(tx("P", member="m-last")))
    await service.stamp(messages(undo("r1", "P", member="m-last")))
    assert ledger.live_stamps(sc) == []
    assert ledger.counter(sc) == (0, 0, 1)
