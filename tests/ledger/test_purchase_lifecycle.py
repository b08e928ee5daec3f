"""A purchase's life, history by history: what stamps, what voids, what the count shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ledger.domain import StampStatus
from ledger.memory import Enrollment, InMemoryLedger
from rules import CardTransaction, ProgramDefinition
from tests.ledger.histories import T0, program, transaction

NOW = datetime(2026, 3, 10, tzinfo=UTC)


def auth(id: str = "a", purchase: str = "P", **changes: object) -> CardTransaction:
    return transaction(id, "auth", purchase_id=purchase, **changes)  # type: ignore[arg-type]


def clearing(id: str = "c", purchase: str = "P", **changes: object) -> CardTransaction:
    return transaction(id, "clearing", purchase_id=purchase, **changes)  # type: ignore[arg-type]


def refund(original: str, id: str = "r", **changes: object) -> CardTransaction:
    return transaction(id, "refund", original_id=original, **changes)  # type: ignore[arg-type]


def reversal(original: str, id: str = "v") -> CardTransaction:
    return transaction(id, "reversal", original_id=original)


def ledger_for(*programs: ProgramDefinition) -> InMemoryLedger:
    enrolled = [Enrollment(f"sc_{p.id}", p.id, "m1", T0 - timedelta(hours=1)) for p in programs]
    return InMemoryLedger({p.id: p for p in programs}, enrolled)


def run(ledger: InMemoryLedger, *events: CardTransaction, one_by_one: bool = True) -> None:
    batches = [[e] for e in events] if one_by_one else [list(events)]
    for batch in batches:
        ledger.stamp(batch, NOW)


def unredeemed(ledger: InMemoryLedger, program_id: str = "lp_x") -> int:
    return ledger.collections[f"sc_{program_id}"].tally.unredeemed_purchases


# The histories of one purchase P (auth `a`, clearing `c`) on a program of threshold 3 that
# stamps on clearing, each with the count it must leave.
HISTORIES = [
    ("auth, clearing", [auth(), clearing()], 1),
    ("auth, clearing, refund naming P", [auth(), clearing(), refund("P")], 0),
    ("auth, refund naming P, clearing", [auth(), refund("P"), clearing()], 0),
    ("refund naming P, auth, clearing", [refund("P"), auth(), clearing()], 0),
    ("auth, clearing, reversal naming a", [auth(), clearing(), reversal("a")], 0),
    ("auth, clearing, refund naming c", [auth(), clearing(), refund("c")], 0),
    ("refund naming a, auth, clearing", [refund("a"), auth(), clearing()], 0),
    ("clearing, refund naming a, auth", [clearing(), refund("a"), auth()], 0),
    ("refund naming a, clearing only", [refund("a"), clearing()], 1),
]


@pytest.mark.parametrize("one_by_one", [True, False], ids=["event by event", "one batch"])
@pytest.mark.parametrize(("history", "events", "count"), HISTORIES, ids=[h[0] for h in HISTORIES])
def test_a_purchase_counts_once_unless_an_undo_names_any_of_its_ids(
    history: str, events: list[CardTransaction], count: int, one_by_one: bool
) -> None:
    ledger = ledger_for(program("lp_x", threshold=3))
    run(ledger, *events, one_by_one=one_by_one)
    assert unredeemed(ledger) == count


def test_an_auth_program_stamps_on_the_auth_and_its_clearing_changes_nothing() -> None:
    ledger = ledger_for(program("lp_x", threshold=3, stamp_on="auth"))
    run(ledger, clearing(), auth(), clearing(id="c2"))
    assert unredeemed(ledger) == 1
    assert ledger.stamps[("sc_lp_x", "P")].transaction_id == "a"


def test_an_undo_naming_the_clearing_voids_an_auth_programs_stamp() -> None:
    ledger = ledger_for(program("lp_x", threshold=3, stamp_on="auth"))
    run(ledger, auth(), clearing(), refund("c"))
    assert unredeemed(ledger) == 0


def test_an_undo_after_the_reward_makes_the_next_cycle_longer_and_never_claws_back() -> None:
    ledger = ledger_for(program("lp_x", threshold=2))
    run(ledger, clearing("c1", "P1"), clearing("c2", "P2"), refund("P1"))
    collection = ledger.collections["sc_lp_x"]
    assert len(ledger.rewards) == 1
    assert (collection.tally.unredeemed_purchases, collection.tally.owed_stamps) == (0, 1)
    run(ledger, clearing("c3", "P3"), clearing("c4", "P4"), clearing("c5", "P5"))
    assert len(ledger.rewards) == 2
    assert unredeemed(ledger) == 0


@pytest.mark.parametrize(
    ("policy", "refunds", "voided"),
    [
        ("void", [200], True),
        ("keep", [200], False),
        ("keep", [450], True),
        ("keep", [200, 250], True),
        ("keep", [200, 100], False),
    ],
)
def test_a_partial_refund_voids_unless_the_program_keeps_it_until_the_refunds_add_up(
    policy: str, refunds: list[int], voided: bool
) -> None:
    ledger = ledger_for(program("lp_x", threshold=3, partial_refunds=policy))
    run(
        ledger,
        clearing(amount=450),
        *[refund("P", f"r{n}", amount=a) for n, a in enumerate(refunds)],
    )
    assert (unredeemed(ledger) == 0) is voided


def test_a_refund_in_another_currency_voids_a_kept_partial_program_stamp() -> None:
    ledger = ledger_for(program("lp_x", threshold=3, partial_refunds="keep"))
    run(ledger, clearing(amount=450), refund("P", amount=10, currency="EUR"))
    assert unredeemed(ledger) == 0


def test_a_purchase_before_enrollment_never_stamps() -> None:
    ledger = ledger_for(program("lp_x", threshold=3))
    run(ledger, clearing(at=T0 - timedelta(hours=2)))
    assert unredeemed(ledger) == 0
    assert not ledger.stamps


def test_a_voided_stamp_frees_its_day_for_the_earliest_capped_one() -> None:
    capped = program("lp_x", threshold=5, daily_cap_per_member=1)
    at = {"at": T0 + timedelta(hours=1)}
    ledger = ledger_for(capped)
    run(ledger, clearing("c1", "P1", **at), clearing("c2", "P2", **at), clearing("c3", "P3", **at))
    statuses = {p: s.status for (_, p), s in ledger.stamps.items()}
    assert statuses == {"P1": StampStatus.LIVE, "P2": StampStatus.CAPPED, "P3": StampStatus.CAPPED}
    run(ledger, refund("P1"))
    statuses = {p: s.status for (_, p), s in ledger.stamps.items()}
    assert statuses == {"P1": StampStatus.VOIDED, "P2": StampStatus.LIVE, "P3": StampStatus.CAPPED}
    assert unredeemed(ledger) == 1


def test_a_purchase_whose_undo_is_waiting_takes_no_cap_slot_in_any_batching() -> None:
    capped = program("lp_x", threshold=5, daily_cap_per_member=1)
    events = [refund("P1"), clearing("c1", "P1"), clearing("c2", "P2")]
    for one_by_one in (True, False):
        ledger = ledger_for(capped)
        run(ledger, *events, one_by_one=one_by_one)
        assert unredeemed(ledger) == 1


def test_a_cap_counts_days_on_the_programs_clock() -> None:
    # 23:30 and 00:30 UTC are one day in Los Angeles and two in London... and in Auckland
    # 12:30 and 13:30 the same day.
    late, early = (
        T0.replace(hour=23, minute=30),
        T0.replace(hour=23, minute=30) + timedelta(hours=1),
    )
    for zone, live in [("UTC", 2), ("America/Los_Angeles", 1)]:
        ledger = ledger_for(program("lp_x", threshold=5, daily_cap_per_member=1, timezone=zone))
        run(ledger, clearing("c1", "P1", at=late), clearing("c2", "P2", at=early))
        assert unredeemed(ledger) == live, zone


def test_a_refund_reward_is_capped_in_the_programs_currency() -> None:
    capped = program(
        "lp_x", 1, {"type": "refund", "max_amount": 300, "currency": "GBP"}, currencies=["GBP"]
    )
    ledger = ledger_for(capped)
    run(ledger, clearing(amount=450))
    (reward,) = ledger.rewards.values()
    assert (reward.amount, reward.currency) == (300, "GBP")


def test_a_refund_cap_in_a_currency_the_rules_do_not_pin_is_refused_at_load() -> None:
    with pytest.raises(ValueError, match=r"rules\.currencies must be \[KRW\]"):
        program("lp_x", 1, {"type": "refund", "max_amount": 5000, "currency": "KRW"})


def test_redelivery_of_every_event_changes_nothing() -> None:
    ledger = ledger_for(program("lp_x", threshold=2))
    events = [auth(), clearing(), clearing("c2", "P2"), refund("P")]
    run(ledger, *events)
    before = (dict(ledger.stamps), dict(ledger.rewards), dict(ledger.collections))
    plans = [ledger.stamp([e], NOW) for e in events]
    assert (dict(ledger.stamps), dict(ledger.rewards), dict(ledger.collections)) == before
    assert all(p.outcome.repeated == 1 and not p.events for p in plans)
