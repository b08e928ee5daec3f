"""`autostamp reconcile` re-derives counters and rewards, and names every difference."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.streams.conftest import Ledger
from tests.streams.factories import enroll, messages, program, tx, undo
from tests.support.reconciling import assert_reconciled, reconcile

MakeService = Callable[..., Any]


@pytest.fixture
async def stamped(engine: Engine, make_service: MakeService) -> str:
    """A collection with a reward, a void after it, and stamps of the next cycle."""
    service = await make_service(program(threshold=2))
    sc = enroll(engine)
    await service.stamp(messages(tx("t1"), tx("t2"), undo("r1", "t1"), tx("t3"), tx("t4")))
    return sc


def test_a_ledger_written_by_the_worker_reconciles_with_no_difference(
    stamped: str, database_url: str, ledger: Ledger
) -> None:
    result = assert_reconciled(database_url)
    assert (result["collections"], result["rewards"]) == (1, 1)
    assert ledger.counter(stamped) == (1, 0, 2)


@pytest.mark.parametrize(
    ("corruption", "kind"),
    [
        ("UPDATE stamp_collections SET unredeemed_purchases = 0", "counter"),
        ("UPDATE stamp_collections SET cycle = 5", "counter"),
        ("UPDATE rewards SET cycle = 2", "reward cycles"),
        ("UPDATE rewards SET purchase_id = 'nowhere'", "reward without stamp"),
        ("UPDATE rewards SET amount = 10000", "refund above its purchase"),
        (
            "UPDATE stamps SET status = 'live', voided_at = NULL, void_transaction_id = NULL "
            "WHERE purchase_id = 't1'",
            "stamp not voided",
        ),
        (
            "UPDATE stamps SET void_transaction_id = 'ghost' WHERE purchase_id = 't1'",
            "void without undo",
        ),
    ],
)
def test_each_kind_of_difference_is_named(
    stamped: str, engine: Engine, database_url: str, corruption: str, kind: str
) -> None:
    with engine.begin() as conn:
        conn.execute(text(corruption))
    result = reconcile(database_url)
    assert kind in {d["kind"] for d in result["differences"]}  # type: ignore[attr-defined]
