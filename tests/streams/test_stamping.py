"""Stamping, as a bank feed and a publisher see it: exactly once, whatever the delivery."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.batch import Incoming, Rejected, Source
from ledger.catalog import ProgramCatalog
from ledger.errors import InfrastructureError
from ledger.failures import Backoff
from ledger.programs import Verdict
from ledger.reconcile import reconcile
from rules import CardTransaction, ProgramDefinition, ProgramStatus
from streams.service import StampingService
from tests.streams.conftest import Ledger
from tests.streams.factories import T0, enroll, messages, program, tx, undo
from tests.support.log_audit import PERSONAL_MARK

MakeService = Callable[..., Any]


async def test_purchases_stamp_until_the_threshold_then_reward_and_keep_the_overflow(
    engine: Engine, make_service: MakeService, ledger: Ledger, subscriber: None
) -> None:
    service = await make_service(program(threshold=3))
    sc = enroll(engine)
    amounts = [300, 450, 520, 610]
    outcome = await service.stamp(messages(*(tx(f"t{i}", amount=a) for i, a in enumerate(amounts))))
    assert (outcome.stamps, outcome.rewards) == (4, 1)
    assert ledger.counter(sc) == (1, 0, 2)
    assert ledger.rewards(sc) == [(1, "t2", 520)]
    assert sorted(ledger.events()) == ["reward.triggered"] + ["stamp.collected"] * 4
    assert ledger.scalar("SELECT count(*) FROM rewards WHERE payout_published_at IS NULL") == 1


async def test_a_refund_reward_is_capped_and_a_fixed_reward_pays_its_amount(
    engine: Engine, make_service: MakeService, ledger: Ledger
) -> None:
    capped = program(
        "lp_capped", 2, {"type": "refund", "max_amount": 400, "currency": "GBP"}, currencies=["GBP"]
    )
    fixed = program("lp_fixed", 2, {"type": "fixed-reward", "amount": 500, "currency": "GBP"})
    service = await make_service(capped, fixed)
    a, b = enroll(engine, program_id="lp_capped"), enroll(engine, program_id="lp_fixed")
    await service.stamp(messages(tx("t1", amount=900), tx("t2", amount=900)))
    assert ledger.rewards(a) == [(1, "t2", 400)]
    assert ledger.rewards(b) == [(1, "t2", 500)]


async def test_redelivered_events_do_not_stamp_twice(
    engine: Engine, make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(program(threshold=2))
    sc = enroll(engine)
    batch = [tx("t1"), tx("t2"), tx("t3")]
    await service.stamp(messages(*batch))
    first = ledger.state()
    again = await service.stamp(messages(*batch, *batch))
    assert (again.applied, again.repeated, again.stamps) == (0, 6, 0)
    assert ledger.state() == first
    assert ledger.live_stamps(sc) == ["t1", "t2", "t3"]
    assert ledger.scalar("SELECT count(*) FROM purchase_events") == 3


async def test_auth_then_clearing_of_one_purchase_stamps_once(
    engine: Engine, make_service: MakeService, ledger: Ledger
) -> None:
    on_clearing = program("lp_clearing")
    on_auth = program("lp_auth", stamp_on="auth")
    service = await make_service(on_clearing, on_auth)
    a, b = enroll(engine, program_id="lp_clearing"), enroll(engine, program_id="lp_auth")
    await service.stamp(
        messages(tx("auth-1", type="auth", purchase_id="p1"), tx("clr-1", purchase_id="p1"))
    )
    assert ledger.live_stamps(a) == ["p1"]
    assert ledger.live_stamps(b) == ["p1"]
    assert ledger.rows("SELECT transaction_id FROM stamps WHERE collection_id = :c", c=b)[0][0] == (
        "auth-1"
    )


async def test_a_purchase_before_enrollment_does_not_stamp(
    engine: Engine, make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(program())
    sc = enroll(engine, at=T0)
    await service.stamp(
        messages(tx("before", at=T0 - timedelta(seconds=1)), tx("same-instant", at=T0))
    )
    assert ledger.live_stamps(sc) == ["same-instant"]


async def test_a_purchase_of_a_member_who_never_enrolled_stamps_nothing(
    engine: Engine, make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(program())
    outcome = await service.stamp(messages(tx("t1", member="stranger")))
    assert (outcome.applied, outcome.stamps) == (1, 0)


async def test_a_refund_in_the_current_cycle_takes_the_stamp_back(
    engine: Engine, make_service: MakeService, ledger: Ledger, subscriber: None
) -> None:
    service = await make_service(program(threshold=3))
    sc = enroll(engine)
    await service.stamp(messages(tx("t1"), tx("t2")))
    await service.stamp(messages(undo("r1", "t2")))
    assert ledger.counter(sc) == (1, 0, 1)
    assert ledger.live_stamps(sc) == ["t1"]
    assert "stamp.voided" in ledger.events()


async def test_a_refund_after_the_reward_makes_the_next_cycle_need_one_more_stamp(
    engine: Engine, make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(program(threshold=2))
    sc = enroll(engine)
    await service.stamp(messages(tx("t1"), tx("t2")))
    await service.stamp(messages(undo("r1", "t1"), undo("r1-again", "t1")))
    assert ledger.counter(sc) == (0, 1, 2)
    assert ledger.rewards(sc) == [(1, "t2", 450)]
    await service.stamp(messages(tx("t3"), tx("t4")))
    assert ledger.counter(sc) == (1, 0, 2)
    await service.stamp(messages(tx("t5")))
    assert ledger.counter(sc) == (0, 0, 3)
    assert len(ledger.rewards(sc)) == 2


async def test_a_reversal_before_its_purchase_is_kept_and_voids_it_on_arrival(
    engine: Engine, make_service: MakeService, ledger: Ledger, subscriber: None
) -> None:
    service = await make_service(program(threshold=3))
    sc = enroll(engine)
    waiting = await service.stamp(messages(undo("rev1", "t1", kind="reversal")))
    assert waiting.waiting_undos == 1
    await service.stamp(messages(tx("t1"), tx("t2")))
    assert ledger.counter(sc) == (1, 0, 1)
    assert ledger.live_stamps(sc) == ["t2"]
    assert ledger.rows("SELECT void_transaction_id FROM stamps WHERE purchase_id = 't1'")[0][0] == (
        "rev1"
    )
    assert "stamp.voided" not in ledger.events()


async def test_a_purchase_no_program_wants_leaves_no_row_and_its_undo_waits_harmlessly(
    engine: Engine, make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(program())
    enroll(engine)
    ignored = await service.stamp(messages(tx("elsewhere", merchant="mer_other")))
    assert (ignored.unmatched, ledger.scalar("SELECT count(*) FROM purchase_events")) == (1, 0)
    outcome = await service.stamp(messages(undo("r1", "elsewhere")))
    assert (outcome.applied, outcome.waiting_undos, outcome.voids) == (1, 1, 0)


async def test_the_daily_cap_counts_stamps_per_local_day(
    engine: Engine, make_service: MakeService, ledger: Ledger
) -> None:
    capped = program(threshold=10, daily_cap_per_member=2, timezone="America/New_York")
    service = await make_service(capped)
    sc = enroll(engine, at=T0 - timedelta(days=1))
    # 02:00 UTC on the 3rd is still the 2nd in New York.
    late = T0.replace(day=3, hour=2)
    await service.stamp(messages(tx("a", at=T0 + timedelta(hours=3)), tx("b", at=late)))
    await service.stamp(messages(tx("c", at=late + timedelta(minutes=5))))
    await service.stamp(messages(tx("d", at=late + timedelta(hours=6))))
    assert ledger.live_stamps(sc) == ["a", "b", "d"]


async def test_malformed_messages_are_dead_lettered_and_the_good_ones_around_them_stamp(
    engine: Engine, make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(program(threshold=5))
    sc = enroll(engine)
    missing = tx("bad-2")
    del missing["member_id"]
    bad = [
        b"{not json",
        missing,
        tx("bad-3", amount=-5),
        tx("bad-4", currency="XYZ"),
        b"\x00\x01",
        b"x" * (5 * 1024 * 1024),
    ]
    outcome = await service.stamp(messages(tx("good-1"), *bad, tx("good-2")))
    assert (outcome.dead_lettered, outcome.stamps) == (6, 2)
    assert ledger.live_stamps(sc) == ["good-1", "good-2"]
    reasons = [r.reason for r in ledger.rows("SELECT reason FROM dead_letters ORDER BY id")]
    assert "not valid JSON" in reasons[0]
    assert reasons[1].startswith("member_id")
    assert reasons[2].startswith("amount")
    assert reasons[3].startswith("currency")
    kept = ledger.rows("SELECT value, source_topic FROM dead_letters ORDER BY id")
    assert kept[0].value == b"{not json" and kept[0].source_topic == "transactions"


async def test_a_refused_message_read_again_is_kept_once_and_another_at_its_place_is_kept_too(
    make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(program(threshold=5))
    [first] = messages(b"{not json")
    await service.stamp([first])
    await service.stamp([first])  # redelivered after a crash
    assert ledger.scalar("SELECT count(*) FROM dead_letters") == 1
    # The topic's offsets started again (an in-memory broker restarted): another message there.
    await service.stamp([replace(first, value=b"[1, 2")])
    values = [bytes(r.value) for r in ledger.rows("SELECT value FROM dead_letters ORDER BY id")]
    assert values == [b"{not json", b"[1, 2"]


async def test_a_bad_item_of_a_batch_message_is_dead_lettered_alone(
    engine: Engine, make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(program(threshold=5))
    sc = enroll(engine)
    outcome = await service.stamp(messages([tx("b1"), {"id": "broken"}, tx("b3")]))
    assert (outcome.stamps, outcome.dead_lettered) == (2, 1)
    assert ledger.live_stamps(sc) == ["b1", "b3"]
    assert ledger.scalar("SELECT item FROM dead_letters") == 1


class PoisonedCatalog(ProgramCatalog):
    """A catalog that fails on one transaction, as a bug in business logic would."""

    def incoming(self, tx: CardTransaction, source: Source) -> Incoming:
        if tx.id == "poison":
            raise RuntimeError("cannot handle this one")
        return super().incoming(tx, source)


async def test_a_poison_transaction_is_dead_lettered_and_the_rest_of_the_batch_stamps(
    engine: Engine, make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(program(threshold=5), catalog=PoisonedCatalog())
    sc = enroll(engine)
    outcome = await service.stamp(messages(tx("t1"), tx("poison"), tx("t3")))
    assert (outcome.stamps, outcome.dead_lettered, outcome.applied) == (2, 1, 2)
    assert ledger.live_stamps(sc) == ["t1", "t3"]
    assert ledger.scalar("SELECT reason FROM dead_letters") == "processing failed: RuntimeError"


async def test_two_workers_racing_on_the_same_events_stamp_and_reward_once(
    engine: Engine, make_service: MakeService, ledger: Ledger
) -> None:
    first = await make_service(program(threshold=2))
    second = await make_service()
    sc = enroll(engine)
    for round in range(15):
        batch = [tx(f"r{round}-{i}") for i in range(3)]
        await asyncio.gather(first.stamp(messages(*batch)), second.stamp(messages(*batch)))
    assert len(ledger.live_stamps(sc)) == 45
    rewards = ledger.rewards(sc)
    assert [cycle for cycle, _, _ in rewards] == list(range(1, 23))
    assert ledger.counter(sc) == (1, 0, 23)


async def test_a_newer_program_version_judges_the_very_next_batch(
    engine: Engine, make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(program(threshold=5))
    sc = enroll(engine)
    await service.stamp(messages(tx("t0")))
    moved = program(threshold=5, merchant_ids=["mer_new"]).model_copy(update={"version": 2})
    older = program(threshold=5, merchant_ids=["mer_old"])
    another_worker = await make_service()
    assert await apply(another_worker, moved, older) == ["lp_coffee"]
    await service.stamp(messages(tx("t1"), tx("t2", merchant="mer_new")))
    assert ledger.live_stamps(sc) == ["t0", "t2"]


async def test_a_large_bank_batch_is_applied_in_bounded_chunks_and_entirely(
    engine: Engine, make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(program(threshold=4), chunk=7)
    sc = enroll(engine)
    outcome = await service.stamp(
        messages([tx(f"b{i}") for i in range(30)], b"{broken", [tx("b0"), tx("b30")])
    )
    assert (outcome.applied, outcome.repeated, outcome.dead_lettered) == (31, 1, 1)
    assert len(ledger.live_stamps(sc)) == 31
    assert (len(ledger.rewards(sc)), ledger.counter(sc)[0]) == (7, 3)


async def test_a_clean_bank_batch_keeps_each_items_place_for_the_record(
    engine: Engine, make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(program(threshold=9))
    enroll(engine)
    batch = messages([tx("k0"), tx("k1"), tx("k2")])
    await service.stamp(batch)
    rows = ledger.rows("SELECT id AS transaction_id, source_offset FROM purchase_events")
    assert {r.transaction_id for r in rows} == {"k0", "k1", "k2"}
    assert {r.source_offset for r in rows} == {batch[0].offset}


async def test_a_lowered_threshold_rewards_at_once_every_collection_that_reaches_it(
    engine: Engine,
    async_engine: AsyncEngine,
    make_service: MakeService,
    ledger: Ledger,
    subscriber: None,
) -> None:
    service = await make_service(program(threshold=5))
    four, one = enroll(engine, member="m4"), enroll(engine, member="m1")
    await service.stamp(messages(*(tx(f"t{n}", member="m4", amount=100 * n) for n in range(1, 5))))
    await service.stamp(messages(tx("u1", member="m1")))
    lowered = program(threshold=2).model_copy(update={"version": 2})
    assert await apply(service, lowered) == ["lp_coffee"]
    assert ledger.counter(four) == (0, 0, 3)
    assert ledger.rewards(four) == [(1, "t2", 200), (2, "t4", 400)]
    assert ledger.counter(one) == (1, 0, 1)
    assert ledger.events().count("reward.triggered") == 2
    await assert_reconciled(async_engine)


async def test_a_raised_threshold_makes_the_current_cycle_longer(
    engine: Engine, make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(program(threshold=3))
    sc = enroll(engine)
    await service.stamp(messages(tx("t1"), tx("t2")))
    await apply(service, program(threshold=4).model_copy(update={"version": 2}))
    await service.stamp(messages(tx("t3")))
    assert (ledger.counter(sc), ledger.rewards(sc)) == ((3, 0, 1), [])
    await service.stamp(messages(tx("t4")))
    assert ledger.counter(sc) == (0, 0, 2)


async def test_a_paused_program_stamps_nothing_new_but_still_applies_undos(
    engine: Engine, make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(program(threshold=5))
    sc = enroll(engine)
    await service.stamp(messages(tx("t1"), tx("t2")))
    paused = program(threshold=5).model_copy(update={"version": 2, "status": ProgramStatus.PAUSED})
    await apply(service, paused)
    outcome = await service.stamp(messages(tx("t3"), undo("r1", "t1")))
    assert (outcome.unmatched, outcome.voids) == (1, 1)
    assert ledger.live_stamps(sc) == ["t2"]


async def test_a_batch_of_definitions_is_judged_in_one_transaction_refusals_included(
    make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service()
    at = [Source("programs", 0, offset) for offset in range(3)]
    unsigned = Rejected(at[0], b"lp_free", b"{}", "unsigned definition")
    too_large = program(threshold=5).model_copy(update={"id": "lp_huge", "version": 2})
    too_large = too_large.model_copy(update={"qualifying_threshold": 2**40})

    judged = await service.judge_programs(
        [(too_large, at[1]), (program(threshold=5), at[2])], [unsigned]
    )

    assert judged.ids(Verdict.APPLIED) == ["lp_coffee"]
    assert [r.key for r in judged.refused] == [b"lp_free", b"lp_huge"]
    assert "out of range" in judged.refused[1].reason
    letters = ledger.rows("SELECT key, source_offset FROM dead_letters ORDER BY source_offset")
    assert [(bytes(r.key), r.source_offset) for r in letters] == [(b"lp_free", 0), (b"lp_huge", 1)]
    assert [r.id for r in ledger.rows("SELECT id FROM programs")] == ["lp_coffee"]


async def test_dead_letters_that_cannot_be_written_leave_the_batch_of_definitions_unapplied(
    make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service()
    service.backoff = Backoff(attempts=1, first_delay_s=0.01)
    refused = Rejected(Source("programs", 0, 1), b"lp_free", b"{}", "unsigned definition")
    valid = [(program(threshold=5), Source("programs", 0, 0))]
    rename(ledger, "dead_letters", "dead_letters_away")
    try:
        with pytest.raises(InfrastructureError):
            await service.judge_programs(valid, [refused])
    finally:
        rename(ledger, "dead_letters_away", "dead_letters")

    # Not applied either: the batch is read again, and judged whole, once the ledger can.
    assert ledger.rows("SELECT id FROM programs") == []
    judged = await service.judge_programs(valid, [refused])
    assert (judged.ids(Verdict.APPLIED), judged.refused) == (["lp_coffee"], [refused])


async def apply(service: StampingService, *definitions: ProgramDefinition) -> list[str]:
    """Apply definitions as read from the programs topic, none refused; the programs changed."""
    at = [Source("programs", 0, offset) for offset in range(len(definitions))]
    judged = await service.judge_programs(list(zip(definitions, at, strict=True)), [])
    assert judged.refused == []
    return judged.ids(Verdict.APPLIED)


def rename(ledger: Ledger, table: str, to: str) -> None:
    with ledger.engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE {table} RENAME TO {to}"))


async def assert_reconciled(engine: AsyncEngine) -> None:
    """The counters agree with the rows (the checks of `autostamp reconcile`)."""
    async with engine.connect() as conn:
        assert (await reconcile(conn)).differences == []


async def test_a_refusal_never_quotes_a_members_card_or_merchant_values(
    engine: Engine, make_service: MakeService, ledger: Ledger
) -> None:
    member = f"member-{PERSONAL_MARK}"
    refused = [
        tx("r1", member=member, card={"id": f"card-{PERSONAL_MARK}", "bin": PERSONAL_MARK}),
        {**tx("r2", member=member), "merchant": {"id": "m1", "name": "x", "mcc": PERSONAL_MARK}},
        tx("r3", member=member, card={"id": "4111 1111 1111 1111", "scheme": "visa"}),
        tx("poison", member=member),
    ]
    service = await make_service(program(threshold=5), catalog=PoisonedCatalog())
    outcome = await service.stamp(messages(*refused))
    assert outcome.dead_lettered == 4
    letters = ledger.rows("SELECT reason, value FROM dead_letters ORDER BY id")
    for letter in letters:
        assert PERSONAL_MARK not in letter.reason
        assert "4111" not in letter.reason
    # The refused bytes themselves are kept whole, for the bank to correct and replay.
    assert all(PERSONAL_MARK.encode() in letter.value for letter in letters)
