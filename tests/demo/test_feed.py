"""The demo's synthetic feed says what each message is, and the worker's own rules agree."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from autostamp.demo_feed import BankFeed, Pace, Step, StepKind, demo_members
from autostamp.demo_programs import demo_shops
from rules import InvalidTransaction, Matcher, TransactionType, parse_transaction

NOW = datetime(2026, 12, 1, 11, 30, 0, 123456, tzinfo=UTC)


def _steps(seed: int = 7, run: str = "r1", count: int = 400) -> list[Step]:
    feed = BankFeed(demo_shops(), demo_members(4), seed, run)
    return [feed.step(NOW + timedelta(seconds=n)) for n in range(count)]


def test_purchases_stamp_their_shops_program_and_near_misses_stamp_none() -> None:
    matcher = Matcher(shop.program for shop in demo_shops())
    stamped: Counter[str] = Counter()
    for step in _steps():
        if step.kind not in (StepKind.PURCHASE, StepKind.NEAR_MISS):
            continue
        auth, clearing = (parse_transaction(m.value) for m in step.messages)
        assert (auth.type, clearing.type) == (TransactionType.AUTH, TransactionType.CLEARING)
        assert auth.purchase_id == clearing.purchase_id
        programs = [p.id for p in matcher.match(clearing)]
        if step.kind is StepKind.NEAR_MISS:
            assert programs == [] and matcher.qualifying(auth) == []
        else:
            assert len(programs) == 1 and matcher.qualifying(auth) == matcher.match(clearing)
            stamped[programs[0]] += 1
    assert set(stamped) == {shop.program.id for shop in demo_shops()}


def test_refunds_name_an_earlier_purchase_by_each_of_its_ids_in_turn() -> None:
    sent: dict[str, tuple[str, int]] = {}  # id -> (purchase id, amount)
    named: list[str] = []
    refunded: list[str] = []
    for step in _steps():
        if step.kind is StepKind.PURCHASE:
            for message in step.messages:
                tx = parse_transaction(message.value)
                sent[tx.id] = sent[tx.purchase_id] = (tx.purchase_id, tx.amount)
        if step.kind is StepKind.REFUND:
            refund = parse_transaction(step.messages[0].value)
            assert refund.type is TransactionType.REFUND and refund.original_id in sent
            purchase_id, amount = sent[refund.original_id]
            assert refund.amount == amount
            named.append(refund.original_id.removeprefix(purchase_id) or "purchase")
            refunded.append(purchase_id)
    assert named[:6] == ["purchase", "_auth", "_clearing"] * 2
    assert len(refunded) == len(set(refunded)) > 10  # each purchase refunded once at most


def test_malformed_messages_are_refused_for_three_reasons() -> None:
    reasons = set()
    for step in _steps():
        if step.kind is StepKind.MALFORMED:
            with pytest.raises(InvalidTransaction) as refused:
                parse_transaction(step.messages[0].value)
            reasons.add(str(refused.value).split(":")[0])
    assert reasons == {"not valid JSON", "merchant", "amount"}


def test_every_kind_comes_keyed_by_its_member_and_dated_to_the_microsecond() -> None:
    steps = _steps()
    assert {step.kind for step in steps} == set(StepKind)
    members = set(demo_members(4))
    for step in steps:
        for message in step.messages:
            assert message.key.decode() in members
            if step.kind is not StepKind.MALFORMED:
                assert orjson.loads(message.value)["occurred_at"].endswith(".123456+00:00")


def test_the_seed_fixes_the_choices_and_the_run_keeps_ids_new() -> None:
    first, again, other_run = _steps(run="r1"), _steps(run="r1"), _steps(run="r2")

    assert first == again
    assert [s.kind for s in first] == [s.kind for s in other_run]
    assert first[0].messages[0].value != other_run[0].messages[0].value
    assert [s.kind for s in first] != [s.kind for s in _steps(seed=8)]


def test_the_pace_keeps_the_rate_and_forgives_a_stall() -> None:
    pace = Pace(rate=20, start=100.0)

    assert pace.due(100.5, sent=0) == 10
    assert pace.due(101.0, sent=11) == 9
    assert pace.due(110.0, sent=20) == 0  # 160 behind: start again from here
    assert pace.due(110.5, sent=20) == 10


def test_the_feed_refuses_a_naive_time() -> None:
    feed = BankFeed(demo_shops(), demo_members(1), 1, "r")
    with pytest.raises(ValueError, match="UTC offset"):
        feed.step(datetime(2026, 12, 1))
