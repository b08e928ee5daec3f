"""The relay: payouts and dead letters reach Kafka, and one record the broker refuses stops
nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from autostamp.settings import TopicSettings
from ledger.dead_letters import DeadLetter
from streams.config import Topics
from streams.kafka import KafkaPublisher
from streams.relay import PUBLISHED_PREFIX_BYTES, Relay, dead_letter_record
from tests.streams.conftest import Ledger
from tests.streams.factories import messages, program

MakeService = Callable[..., Any]


def letter(value: bytes) -> DeadLetter:
    now = datetime(2026, 3, 2, tzinfo=UTC)
    return DeadLetter(
        7,
        "transactions",
        1,
        42,
        -1,
        b"m1",
        value,
        len(value),
        hashlib.sha256(value).hexdigest(),
        "not valid JSON",
        now,
        None,
        None,
        None,
    )


def test_a_large_dead_letter_goes_out_as_a_prefix_with_its_size_and_hash() -> None:
    value = b"x" * (3 * 1024 * 1024)
    record = dead_letter_record("dead", letter(value))
    headers = dict(record.headers)
    assert record.value == value[:PUBLISHED_PREFIX_BYTES]
    assert headers["truncated"] == b"true"
    assert headers["original-size"] == str(len(value)).encode()
    assert headers["original-sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert (headers["source-partition"], headers["source-offset"]) == (b"1", b"42")


def test_a_small_dead_letter_goes_out_whole() -> None:
    record = dead_letter_record("dead", letter(b"{not json"))
    assert (record.value, dict(record.headers)["truncated"]) == (b"{not json", b"false")


@pytest.mark.kafka
async def test_a_dead_letter_the_broker_refuses_is_marked_and_the_others_still_go_out(
    engine: Engine,
    async_engine: AsyncEngine,
    make_service: MakeService,
    ledger: Ledger,
    kafka_bootstrap: str,
    topics: TopicSettings,
) -> None:
    service = await make_service(program())
    await service.stamp(messages(b"{" * 5000, b"{short"))
    # A producer whose limit is below the first letter's size: librdkafka refuses it.
    publisher = KafkaPublisher({"bootstrap.servers": kafka_bootstrap, "message.max.bytes": 2000})
    relay = Relay(async_engine, publisher, Topics(dead_letter=topics.dead_letter))
    assert await relay.run_once() == 1
    rows = ledger.rows("SELECT size, published_at, publish_error FROM dead_letters ORDER BY id")
    assert rows[0].published_at is None and "MSG_SIZE_TOO_LARGE" in rows[0].publish_error
    assert rows[1].published_at is not None and rows[1].publish_error is None
    assert (relay.counts.unpublishable, relay.counts.dead_letters) == (1, 1)
    assert await relay.run_once() == 0
