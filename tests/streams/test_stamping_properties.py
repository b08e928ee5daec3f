"""Whatever the order, the batching and the duplicates, the ledger ends in the same state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from ledger.schema import Base
from tests.streams.conftest import Ledger
from tests.streams.factories import enroll, messages, program, tx, undo

THRESHOLD = 3


def _clean(engine: Engine) -> None:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables if t.name != "programs")
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[dict[str, Any]], int, set[str]]:
    """Purchases, undos of some of them, each delivered one to three times, shuffled, batched."""
    purchases = draw(st.integers(min_value=1, max_value=9))
    undone = draw(st.sets(st.integers(min_value=0, max_value=purchases - 1)))
    events = [tx(f"t{i}", amount=100 + i) for i in range(purchases)]
    events += [undo(f"r{i}", f"t{i}") for i in sorted(undone)]
    copies = draw(st.lists(st.integers(1, 3), min_size=len(events), max_size=len(events)))
    delivered = [e for e, n in zip(events, copies, strict=True) for _ in range(n)]
    shuffled = draw(st.permutations(delivered))
    batch = draw(st.integers(min_value=1, max_value=len(shuffled)))
    return shuffled, batch, {f"t{i}" for i in undone}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(history=histories())
def test_final_state_depends_only_on_the_set_of_distinct_events(
    engine: Engine, make_service: Callable[..., Any], ledger: Ledger, history: Any
) -> None:
    events, batch, undone = history
    purchases = {e["id"] for e in events if e["type"] == "clearing"}

    async def run() -> None:
        service = await make_service()
        for start in range(0, len(events), batch):
            await service.stamp(messages(*events[start : start + batch]))
        await service.engine.dispose()

    _clean(engine)
    if not ledger.scalar("SELECT count(*) FROM programs"):
        from tests.streams.factories import save_programs

        save_programs(engine, program(threshold=THRESHOLD))
    sc = enroll(engine)
    asyncio.run(run())

    live = set(ledger.live_stamps(sc))
    assert live == purchases - undone
    assert ledger.scalar("SELECT count(*) FROM stamps") == len(purchases)
    unredeemed, owed, cycle = ledger.counter(sc)
    rewards = ledger.rewards(sc)
    assert len(rewards) == cycle - 1
    assert len(rewards) * THRESHOLD + unredeemed - owed == len(live)
    assert unredeemed == 0 or owed == 0
    if not undone:
        assert (len(rewards), unredeemed) == divmod(len(purchases), THRESHOLD)
