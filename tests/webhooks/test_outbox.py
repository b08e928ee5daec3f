"""The outbox: envelope and size (W17), stable ids, one statement a batch, subscriptions (INV-7)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.database import transaction
from ledger.events import (
    MAX_BODY_BYTES,
    CollectionRef,
    OutboxEvent,
    PurchaseRef,
    RewardSettled,
    RewardTriggered,
    StampAdjusted,
    StampCollected,
    StampCollectionCreated,
    StampCollectionDeleted,
    StampVoided,
    build_message,
)
from ledger.outbox import enqueue_events
from ledger.webhook_endpoints import delete_endpoint, disable_endpoint
from tests.conftest import examples
from tests.webhooks.receiver import Receiver
from tests.webhooks.support import (
    NOW,
    add_endpoint,
    all_settled,
    collection,
    dispatching,
    enqueue,
    eventually,
    fast_settings,
    reward_triggered,
    rows,
    stamp_collected,
)

EVENTS_MD = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"

ids = st.text(min_size=1, max_size=200)
collections = st.builds(
    CollectionRef,
    collection_id=ids,
    program_id=ids,
    member_id=ids,
    qualifying_threshold=st.integers(1, 10_000),
)
purchases = st.builds(
    PurchaseRef,
    transaction_id=ids,
    purchase_id=ids,
    amount=st.integers(1, 2**63 - 1),
    currency=st.from_regex(r"[A-Z]{3}", fullmatch=True),
    merchant_id=ids,
    merchant_name=st.text(max_size=2000),
    occurred_at=st.just(NOW),
)
common = {"timestamp": st.just(NOW), "collection": collections}
events: st.SearchStrategy[OutboxEvent] = st.one_of(
    st.builds(
        StampCollected,
        **common,
        purchase=purchases,
        cycle=st.integers(1, 2**31 - 1),
        unredeemed_purchases=st.integers(0, 2**31 - 1),
    ),
    st.builds(
        StampVoided,
        **common,
        purchase_id=ids,
        voided_by_transaction_id=ids,
        voided_by_type=st.sampled_from(["refund", "reversal"]),
        unredeemed_purchases=st.integers(0, 2**31 - 1),
    ),
    st.builds(
        RewardTriggered,
        **common,
        reward_id=ids,
        type=st.sampled_from(["refund", "fixed-reward"]),
        amount=st.integers(0, 2**63 - 1),
        currency=st.from_regex(r"[A-Z]{3}", fullmatch=True),
        cycle=st.integers(1, 2**31 - 1),
        purchase=purchases,
    ),
    st.builds(StampCollectionCreated, **common),
    st.builds(StampCollectionDeleted, **common),
    st.builds(
        StampAdjusted,
        **common,
        adjustment_id=ids,
        delta=st.integers(-100, 100).filter(bool),
        reason=st.text(min_size=1, max_size=500),
        cycle=st.integers(1, 2**31 - 1),
        unredeemed_purchases=st.integers(0, 2**31 - 1),
        owed_stamps=st.integers(0, 2**31 - 1),
    ),
)


@settings(max_examples=examples(200))
@given(events)
def test_w17_every_event_is_a_small_envelope_of_type_timestamp_and_data(event: OutboxEvent) -> None:
    message = build_message(event)
    body = message.body.encode()
    assert len(body) <= MAX_BODY_BYTES
    payload = json.loads(body)
    assert list(payload) == ["type", "timestamp", "data"]
    assert payload["type"] == message.event_type
    assert payload["timestamp"] == "2024-05-01T12:00:00Z"
    assert payload["data"]["collection_id"] == event.collection.collection_id


@given(events)
def test_the_same_event_always_gets_the_same_message_id(event: OutboxEvent) -> None:
    assert build_message(event).id == build_message(event).id
    assert re.fullmatch(r"msg_[A-Z2-7]{24}", build_message(event).id)


def test_different_facts_get_different_ids() -> None:
    voided = StampVoided(
        timestamp=NOW,
        collection=collection(1),
        purchase_id="p_1",
        voided_by_transaction_id="tx_9",
        voided_by_type="refund",
        unredeemed_purchases=0,
    )
    found = {build_message(e).id for e in (stamp_collected(1), stamp_collected(2), voided)}
    assert len(found) == 3


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    return type(value).__name__


def test_the_documented_examples_have_the_shape_that_is_sent() -> None:
    documented = [
        json.loads(block)
        for block in re.findall(r"```json\n(.*?)```", EVENTS_MD.read_text(), re.DOTALL)
    ]
    samples: list[OutboxEvent] = [
        stamp_collected(),
        StampVoided(
            timestamp=NOW,
            collection=collection(),
            purchase_id="p",
            voided_by_transaction_id="t",
            voided_by_type="refund",
            unredeemed_purchases=0,
        ),
        reward_triggered(),
        StampAdjusted(
            timestamp=NOW,
            collection=collection(),
            adjustment_id="adj_1",
            delta=1,
            reason="missed purchase",
            cycle=2,
            unredeemed_purchases=3,
            owed_stamps=0,
        ),
        StampCollectionCreated(timestamp=NOW, collection=collection()),
        StampCollectionDeleted(timestamp=NOW, collection=collection()),
        RewardSettled(
            timestamp=NOW,
            collection=collection(),
            reward_id="rw_1",
            type="refund",
            amount=450,
            currency="GBP",
            cycle=1,
            paid=False,
            attempt=1,
            reason="card closed",
        ),
    ]
    sent = [json.loads(build_message(e).body) for e in samples]
    assert [_shape(d) for d in documented] == [_shape(s) for s in sent]


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


async def test_a_batch_is_written_in_two_statements_however_many_events(
    async_engine: AsyncEngine,
) -> None:
    for n in range(3):
        await add_endpoint(async_engine, f"http://127.0.0.1:9/{n}")
    for size in (1, 500):
        batch = [reward_triggered(size * 1000 + n) for n in range(size)]
        async with transaction(async_engine) as conn:
            with statements(async_engine) as seen:
                await enqueue_events(conn, batch)
        assert len(seen) == 2  # which types are subscribed, then messages and deliveries
    [row] = await rows(async_engine, "SELECT count(*) AS n FROM webhook_deliveries")
    assert row.n == 3 * 501


async def test_events_nobody_subscribes_to_are_not_written(async_engine: AsyncEngine) -> None:
    await add_endpoint(async_engine, "http://127.0.0.1:9/hook", event_types=["reward.triggered"])
    await enqueue(async_engine, [stamp_collected(1), reward_triggered(1)])
    written = await rows(async_engine, "SELECT event_type FROM webhook_messages")
    assert [r.event_type for r in written] == ["reward.triggered"]


async def test_an_empty_batch_writes_nothing(async_engine: AsyncEngine) -> None:
    async with transaction(async_engine) as conn:
        with statements(async_engine) as seen:
            await enqueue_events(conn, [])
    assert seen == []


async def test_writing_the_same_event_again_changes_nothing(async_engine: AsyncEngine) -> None:
    await add_endpoint(async_engine, "http://127.0.0.1:9/hook")
    await enqueue(async_engine, [reward_triggered(1)])
    await add_endpoint(async_engine, "http://127.0.0.1:9/later")
    await enqueue(async_engine, [reward_triggered(1), reward_triggered(1)])
    [messages] = await rows(async_engine, "SELECT count(*) AS n FROM webhook_messages")
    [deliveries] = await rows(async_engine, "SELECT count(*) AS n FROM webhook_deliveries")
    assert (messages.n, deliveries.n) == (1, 1)


async def test_an_endpoint_created_later_does_not_get_older_events(
    async_engine: AsyncEngine,
) -> None:
    early = await add_endpoint(async_engine, "http://127.0.0.1:9/early")
    await enqueue(async_engine, [reward_triggered(1)])
    late = await add_endpoint(async_engine, "http://127.0.0.1:9/late")
    await enqueue(async_engine, [reward_triggered(2)])
    found = await rows(
        async_engine, "SELECT endpoint_id, count(*) AS n FROM webhook_deliveries GROUP BY 1"
    )
    assert {row.endpoint_id: row.n for row in found} == {
        early.endpoint.id: 2,
        late.endpoint.id: 1,
    }


async def test_a_disabled_endpoint_gets_its_new_events_held_and_a_deleted_one_none(
    async_engine: AsyncEngine,
) -> None:
    disabled = await add_endpoint(async_engine, "http://127.0.0.1:9/disabled")
    deleted = await add_endpoint(async_engine, "http://127.0.0.1:9/deleted")
    async with transaction(async_engine) as conn:
        await disable_endpoint(conn, disabled.endpoint.id, NOW)
        await delete_endpoint(conn, deleted.endpoint.id, NOW)
    await enqueue(async_engine, [reward_triggered(1)])
    held = await rows(async_engine, "SELECT endpoint_id, status FROM webhook_deliveries")
    assert [(row.endpoint_id, row.status) for row in held] == [
        (disabled.endpoint.id, "endpoint_disabled")
    ]


async def test_inv7_an_endpoint_receives_only_the_types_it_subscribed_to(
    async_engine: AsyncEngine, receiver: Receiver
) -> None:
    await add_endpoint(async_engine, receiver.url("/stamps"), ["stamp.collected"])
    await add_endpoint(async_engine, receiver.url("/rewards"), ["reward.triggered"])
    await add_endpoint(async_engine, receiver.url("/both"), ["stamp.collected", "reward.triggered"])
    await enqueue(async_engine, [stamp_collected(1), reward_triggered(1), stamp_collected(2)])
    async with dispatching(async_engine, fast_settings()):
        await eventually(lambda: all_settled(async_engine))
    got = {
        path: sorted(json.loads(r.body)["type"] for r in receiver.on(path))
        for path in ("/stamps", "/rewards", "/both")
    }
    assert got == {
        "/stamps": ["stamp.collected", "stamp.collected"],
        "/rewards": ["reward.triggered"],
        "/both": ["reward.triggered", "stamp.collected", "stamp.collected"],
    }
