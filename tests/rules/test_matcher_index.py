"""The matcher: programs found through their merchant, brand or MCC, kept up to date in place."""

from collections.abc import Callable

from rules import CardTransaction, Decision, Matcher, ProgramDefinition, describe

TxBuilder = Callable[..., CardTransaction]
ProgramBuilder = Callable[..., ProgramDefinition]


def ids(programs: list[ProgramDefinition]) -> list[str]:
    return [program.id for program in programs]


def test_matches_come_back_in_program_id_order(
    make_tx: TxBuilder, make_program: ProgramBuilder
) -> None:
    programs = [
        make_program({"mccs": ["5814"]}, id="lp_c"),
        make_program({}, id="lp_a"),
        make_program({"merchant_ids": ["mer_soho"]}, id="lp_d"),
        make_program({"brand_ids": ["brand_bean"]}, id="lp_b"),
    ]

    assert ids(Matcher(programs).match(make_tx())) == ["lp_a", "lp_b", "lp_c", "lp_d"]


def test_a_program_is_found_through_any_of_its_merchants(
    make_tx: TxBuilder, make_program: ProgramBuilder
) -> None:
    matcher = Matcher([make_program({"merchant_ids": ["mer_a", "mer_b"]})])

    assert ids(matcher.match(make_tx(merchant={"id": "mer_b"}))) == ["lp_test"]
    assert matcher.match(make_tx(merchant={"id": "mer_c"})) == []


def test_a_program_indexed_by_merchant_still_checks_its_brand_and_mcc(
    make_tx: TxBuilder, make_program: ProgramBuilder
) -> None:
    program = make_program(
        {"merchant_ids": ["mer_soho"], "brand_ids": ["brand_bean"], "mccs": ["5814"]}
    )
    matcher = Matcher([program])

    assert matcher.match(make_tx()) == [program]
    assert matcher.match(make_tx(merchant={"mcc": "5411"})) == []
    assert matcher.match(make_tx(merchant={"brand_id": "brand_tea"})) == []


def test_a_program_naming_no_merchant_brand_or_mcc_is_a_candidate_for_every_purchase(
    make_tx: TxBuilder, make_program: ProgramBuilder
) -> None:
    program = make_program({"card_schemes": ["visa"]})
    matcher = Matcher([program])

    assert matcher.match(make_tx(merchant={"id": "anywhere", "mcc": "0742", "brand_id": None})) == [
        program
    ]
    assert [d.program_id for d in matcher.explain(make_tx(card={"scheme": "amex"}))] == ["lp_test"]


def test_an_upsert_replaces_the_program_under_its_new_keys(
    make_tx: TxBuilder, make_program: ProgramBuilder
) -> None:
    matcher = Matcher([make_program({"merchant_ids": ["mer_soho"]})])

    matcher.upsert(make_program({"merchant_ids": ["mer_kings_cross"]}, version=2))

    assert len(matcher) == 1
    assert matcher.match(make_tx()) == []
    assert ids(matcher.match(make_tx(merchant={"id": "mer_kings_cross"}))) == ["lp_test"]
    assert matcher.explain(make_tx()) == []


def test_an_upsert_can_move_a_program_between_indexes_and_types(
    make_tx: TxBuilder, make_program: ProgramBuilder
) -> None:
    matcher = Matcher([make_program({"merchant_ids": ["mer_x"]})])

    matcher.upsert(make_program({"stamp_on": "auth"}, version=2))

    assert ids(matcher.match(make_tx(type="auth"))) == ["lp_test"]
    assert matcher.match(make_tx(type="clearing")) == []
    assert matcher.get("lp_test") == make_program({"stamp_on": "auth"}, version=2)


def test_remove_forgets_the_program_and_says_whether_it_was_there(
    make_tx: TxBuilder, make_program: ProgramBuilder
) -> None:
    matcher = Matcher([make_program({"mccs": ["5814"]}, id="lp_a"), make_program({}, id="lp_b")])

    assert matcher.remove("lp_a") is True
    assert matcher.remove("lp_a") is False
    assert "lp_a" not in matcher and "lp_b" in matcher
    assert ids(matcher.match(make_tx())) == ["lp_b"]


def test_a_paused_program_is_explained_but_never_matched(
    make_tx: TxBuilder, make_program: ProgramBuilder
) -> None:
    matcher = Matcher([make_program({"mccs": ["5814"]}, status="paused")])

    assert matcher.match(make_tx()) == []
    assert matcher.explain(make_tx()) == [
        Decision(
            "lp_test", matched=False, condition="status", reason="the program is paused, not active"
        )
    ]


def test_explain_decides_every_candidate_and_only_the_candidates(
    make_tx: TxBuilder, make_program: ProgramBuilder
) -> None:
    matcher = Matcher(
        [
            make_program({"merchant_ids": ["mer_soho"]}, id="lp_match"),
            make_program({"brand_ids": ["brand_bean"], "currencies": ["EUR"]}, id="lp_euro"),
            make_program({"mccs": ["5814"], "stamp_on": "auth"}, id="lp_auth"),
            make_program({"merchant_ids": ["mer_elsewhere"]}, id="lp_elsewhere"),
            make_program({"mccs": ["5411"]}, id="lp_grocery"),
        ]
    )

    decisions = matcher.explain(make_tx())

    assert [(d.program_id, d.matched, d.condition) for d in decisions] == [
        ("lp_auth", False, "stamp_on"),
        ("lp_euro", False, "currencies"),
        ("lp_match", True, None),
    ]


def test_when_no_program_is_a_candidate_the_explanation_says_so(
    make_tx: TxBuilder, make_program: ProgramBuilder
) -> None:
    tx = make_tx()
    decisions = Matcher([make_program({"mccs": ["5411"]})]).explain(tx)

    assert decisions == []
    assert describe(decisions, tx) == [
        "no program was a candidate: none names merchant mer_soho, brand brand_bean or MCC 5814, "
        "and none leaves all three open"
    ]


def test_a_refund_matches_nothing_and_the_explanation_says_why(
    make_tx: TxBuilder, make_program: ProgramBuilder
) -> None:
    matcher = Matcher([make_program({"mccs": ["5814"]})])
    refund = make_tx(type="refund", original_id="txn_0")

    assert matcher.match(refund) == []
    assert [d.condition for d in matcher.explain(refund)] == ["stamp_on"]


def test_an_empty_matcher_matches_nothing(make_tx: TxBuilder) -> None:
    matcher = Matcher()

    assert (len(matcher), matcher.match(make_tx()), matcher.get("lp_test")) == (0, [], None)
