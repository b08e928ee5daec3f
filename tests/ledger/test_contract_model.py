"""The contract model on its own: the histories an audit found paid twice or kept a refunded
stamp, each with what docs/stamping.md and the product contract say must come of it."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest

from ledger.memory import Enrollment
from rules import CardTransaction, ProgramDefinition
from tests.ledger.contract_model import ContractModel
from tests.ledger.histories import T0, program, transaction


def edited(
    definition: ProgramDefinition, threshold: int | None = None, **changes: Any
) -> ProgramDefinition:
    """The next version of `definition`, with `changes` to its fields and `rules` to its rules."""
    rules = changes.pop("rules", {})
    update = {
        "version": definition.version + 1,
        "rules": definition.rules.model_copy(update=rules),
        **changes,
    }
    if threshold is not None:
        update["qualifying_threshold"] = threshold
    return ProgramDefinition.model_validate({**definition.model_dump(), **update})


def enrolled(program_id: str = "lp_0", member: str = "m1", at_hours: int = -1) -> Enrollment:
    return Enrollment(
        f"sc_{program_id}_{member}", program_id, member, T0 + timedelta(hours=at_hours)
    )


def clearing(id: str, hours: float, amount: int = 450, **extra: Any) -> CardTransaction:
    return transaction(id, "clearing", amount=amount, at=T0 + timedelta(hours=hours), **extra)


def refund(id: str, of: str, amount: int = 450, **extra: Any) -> CardTransaction:
    return transaction(id, "refund", amount=amount, original_id=of, **extra)


def test_a_promoted_capped_stamp_and_a_lowered_threshold_never_pay_a_rewarded_purchase_again() -> (
    None
):
    lp = program("lp_0", 2, {"type": "refund"}, daily_cap_per_member=1)
    model = ContractModel({"lp_0": lp}, [enrolled()])
    model.apply([clearing("A", 1, 450), clearing("B", 2, 250)])  # B is capped on day 1
    model.apply([clearing("C", 25, 1000)])  # day 2: the cycle completes, paid for C
    model.apply([clearing("E", 49, 150)])  # day 3: the next cycle has one stamp
    raised = edited(lp, rules={"daily_cap_per_member": 2})
    assert model.apply_program(raised)
    # A was rewarded in cycle 1: its void leaves a debt, and B takes A's freed slot.
    model.apply([refund("rA", "A", 450)])
    assert model.apply_program(edited(raised, threshold=1))

    state = model.state()["sc_lp_0_m1"]
    assert state["stamps"] == {
        "A": ("voided", "A", "rA"),
        "B": ("live", "B", None),
        "C": ("live", "C", None),
        "E": ("live", "E", None),
    }
    # One purchase of the current cycle is payable (the count is 1): the latest, E.
    assert state["rewards"] == {1: (1000, "GBP", "C"), 2: (150, "GBP", "E")}
    assert state["counter"] == (0, 0, 3)


def test_a_purchase_beside_added_stamps_is_paid_back_once_when_the_program_turns_refund() -> None:
    fixed = {"type": "fixed-reward", "amount": 500, "currency": "GBP"}
    lp = program("lp_0", 10, fixed, currencies=["GBP"])
    model = ContractModel({"lp_0": lp}, [enrolled()])
    model.apply([clearing("P", 1, 5000)])
    assert model.adjust("sc_lp_0_m1", 8, "k1")
    assert model.state()["sc_lp_0_m1"]["counter"] == (9, 0, 1)

    assert model.apply_program(edited(lp, threshold=3, reward_config={"type": "refund"}))

    state = model.state()["sc_lp_0_m1"]
    # Three cycles complete; only the first has a purchase left to pay back.
    assert state["rewards"] == {1: (5000, "GBP", "P"), 2: (0, "GBP", None), 3: (0, "GBP", None)}
    assert state["counter"] == (0, 0, 4)


def test_a_definition_no_newer_than_the_one_held_changes_nothing() -> None:
    lp = program("lp_0", 3)
    model = ContractModel({"lp_0": lp}, [enrolled()])
    model.apply([clearing("p1", 1), clearing("p2", 2)])
    newer = edited(lp, threshold=2)
    assert model.apply_program(newer)
    before = model.state()

    assert not model.apply_program(edited(lp, threshold=1))  # version 2 again, other content
    assert not model.apply_program(lp)  # version 1, replayed

    assert model.state() == before
    assert model.programs["lp_0"] == newer


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_a_refund_naming_an_auth_below_the_minimum_voids_the_stamp_its_clearing_made(
    order: tuple[int, ...],
) -> None:
    lp = program("lp_0", 3, currencies=["GBP"], min_amount=2000)
    events = [
        transaction("a1", "auth", amount=1800, purchase_id="p1"),
        transaction("c1", "clearing", amount=2100, purchase_id="p1"),
        refund("r1", "a1", 2100),
    ]
    model = ContractModel({"lp_0": lp}, [enrolled()])
    for n in order:
        model.apply([events[n]])

    assert model.state()["sc_lp_0_m1"] == {
        "counter": (0, 0, 1),
        "stamps": {"p1": ("voided", "c1", "r1")},
        "rewards": {},
    }


def test_after_an_erasure_a_refund_still_voids_and_a_new_purchase_stamps_nothing() -> None:
    lp = program("lp_0", 3)
    model = ContractModel({"lp_0": lp}, [enrolled()])
    model.apply([clearing("p1", 1), clearing("p2", 2)])
    model.erase("m1")
    model.apply([refund("r1", "p1"), clearing("p3", 3)])

    assert model.state()["sc_lp_0_m1"] == {
        "counter": (1, 0, 1),
        "stamps": {"p1": ("voided", "p1", "r1"), "p2": ("live", "p2", None)},
        "rewards": {},
    }


def test_ids_reused_by_another_member_are_that_members_own() -> None:
    lp = program("lp_0", 3)
    model = ContractModel({"lp_0": lp}, [enrolled(member="m1"), enrolled(member="m2")])
    for member in ("m1", "m2"):
        model.apply(
            [
                transaction("a1", "auth", member=member, purchase_id="p1"),
                transaction("c1", "clearing", member=member, purchase_id="p1"),
            ]
        )
    model.apply([refund("u1", "a1", member="m2")])
    state = model.state()
    assert state["sc_lp_0_m1"]["stamps"] == {"p1": ("live", "c1", None)}
    assert state["sc_lp_0_m2"]["stamps"] == {"p1": ("voided", "c1", "u1")}

    model.apply([refund("u1", "a1", member="m1")])  # the same undo id, from another member
    assert model.state()["sc_lp_0_m1"] == {
        "counter": (0, 0, 1),
        "stamps": {"p1": ("voided", "c1", "u1")},
        "rewards": {},
    }


def test_a_kept_purchase_completing_a_refund_cycle_pays_back_what_is_left_of_it() -> None:
    lp = program("lp_0", 2, {"type": "refund"}, partial_refunds="keep")
    model = ContractModel({"lp_0": lp}, [enrolled()])
    model.apply([clearing("q", 1, 450), refund("r1", "p", 999), clearing("p", 2, 1000)])

    assert model.state()["sc_lp_0_m1"] == {
        "counter": (0, 0, 2),
        "stamps": {"q": ("live", "q", None), "p": ("live", "p", None)},
        "rewards": {1: (1, "GBP", "p")},
    }


@pytest.mark.parametrize("first_clearing_before_unenrolling", [True, False])
@pytest.mark.parametrize("second_clearing_first", [True, False])
def test_a_purchase_made_before_a_new_enrollment_never_stamps_the_new_collection(
    first_clearing_before_unenrolling: bool, second_clearing_first: bool
) -> None:
    lp = program("lp_0", 3)
    first = transaction("c1", "clearing", purchase_id="p1", at=T0 + timedelta(hours=1))
    second = transaction("c2", "clearing", purchase_id="p1", at=T0 + timedelta(hours=30))
    again = Enrollment("sc_again", "lp_0", "m1", T0 + timedelta(hours=10))
    model = ContractModel({"lp_0": lp}, [enrolled()])
    if first_clearing_before_unenrolling:
        model.apply([first])
    model.unenroll("sc_lp_0_m1")
    model.enroll(again)
    later = [first, second] if not second_clearing_first else [second, first]
    model.apply(later)

    state = model.state()["sc_again"]
    assert state["counter"] == (0, 0, 1) and state["rewards"] == {}
    assert all(status == "voided" for status, _, _ in state["stamps"].values())
    if second_clearing_first and not first_clearing_before_unenrolling:
        # The second clearing stamped while it was the purchase's only known event, and the
        # first, arriving later, withdrew that stamp.
        assert state["stamps"] == {"p1": ("voided", "c2", "c1")}


def test_of_two_waiting_undos_the_one_that_met_the_purchase_first_voids_its_stamp() -> None:
    lp = program("lp_0", 3)
    model = ContractModel({"lp_0": lp}, [enrolled()])
    model.apply(
        [
            refund("r_clearing", "c1"),  # waits for c1
            transaction("a1", "auth", purchase_id="p1"),
            refund("r_auth", "a1"),  # meets the purchase at once, through its auth
            transaction("c1", "clearing", purchase_id="p1"),
        ]
    )

    assert model.state()["sc_lp_0_m1"]["stamps"] == {"p1": ("voided", "c1", "r_auth")}


def test_a_reversal_voids_a_stamp_whatever_its_amount_even_when_partial_refunds_are_kept() -> None:
    lp = program("lp_0", 3, partial_refunds="keep")
    model = ContractModel({"lp_0": lp}, [enrolled()])
    model.apply([clearing("p1", 1, 450), refund("r1", "p1", 100)])
    assert model.state()["sc_lp_0_m1"]["stamps"] == {"p1": ("live", "p1", None)}

    model.apply([transaction("v1", "reversal", amount=100, original_id="p1")])

    assert model.state()["sc_lp_0_m1"]["stamps"] == {"p1": ("voided", "p1", "v1")}
