"""Issue 9's six histories of one purchase, as a new user tries them: a worker process, events
produced with a broker client the project does not ship (aiokafka), counts read back through
the publisher API.

A program with threshold 3 that stamps on clearing; one fresh member per history, enrolled
through the API; purchase P with auth `a` and clearing `c`, both with purchase_id P. One
worker serves all six.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine

from autostamp.settings import TopicSettings
from ledger import keys
from publisher_api import create_app
from rules import ProgramDefinition
from tests.publisher_api.conftest import bearer, broker_up, config, issue_key, no_webhook_urls
from tests.streams.factories import program, signed, tx
from tests.streams.worker import GroupProgress, WorkerProcess, wait_for

pytestmark = pytest.mark.kafka

# Issue 9's table: each history of purchase P, in the order it is produced, and the count it
# must leave (`unredeemed_purchases`).
EXPECTED = {
    "auth, clearing": 1,
    "auth, clearing, refund naming P": 0,
    "auth, refund naming P, clearing": 0,
    "refund naming P, auth, clearing": 0,
    "auth, clearing, reversal naming a": 0,
    "auth, clearing, refund naming c": 0,
}

COFFEE = program(threshold=3)  # stamps purchases at mer_bean on clearing


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await client.start()
    yield client
    await client.stop()


@pytest.fixture
async def api(async_engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(config(), async_engine, broker_up, no_webhook_urls)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def history(name: str, member: str, at: datetime) -> list[dict[str, Any]]:
    """The events a row of the table names, for `member`; their ids are unique to it."""
    ids = {"P": f"P-{member}", "a": f"a-{member}", "c": f"c-{member}"}
    events = []
    for step in name.split(", "):
        kind, _, named = step.partition(" naming ")
        if named:
            events.append(tx(f"u-{member}", member, type=kind, at=at, original_id=ids[named]))
        else:
            events.append(tx(ids[kind[0]], member, type=kind, at=at, purchase_id=ids["P"]))
    return events


async def test_the_six_histories_of_issue_9_count_what_the_design_says(
    worker: WorkerProcess,
    producer: AIOKafkaProducer,
    api: httpx.AsyncClient,
    engine: Engine,
    async_engine: AsyncEngine,
    kafka_bootstrap: str,
    topics: TopicSettings,
) -> None:
    (record,) = signed(topics.programs, COFFEE)
    await producer.send_and_wait(
        record.topic, record.value, key=record.key, headers=list(record.headers)
    )
    await asyncio.to_thread(
        wait_for, lambda: _holds(engine, COFFEE), 60, "the program in the ledger", worker.log
    )
    full = await issue_key(async_engine, keys.Scope.FULL)
    members = {name: f"m{n}" for n, name in enumerate(EXPECTED, start=1)}
    collections = {name: await _enroll(api, full, member) for name, member in members.items()}

    after_enrolling = datetime.now(UTC) + timedelta(seconds=1)
    histories = {name: history(name, members[name], after_enrolling) for name in EXPECTED}
    # The n-th event of every history, then wait until the worker has applied them: each
    # event is in a batch of its own, so what it meets is what the ledger kept of the others.
    sent = 0
    for n in range(max(len(events) for events in histories.values())):
        for name, events in histories.items():
            if n < len(events):
                value, key = orjson.dumps(events[n]), members[name].encode()
                await producer.send_and_wait(topics.transactions, value, key=key)
                sent += 1
        await asyncio.to_thread(_until_applied, kafka_bootstrap, worker, topics.transactions, sent)

    read = await issue_key(async_engine, keys.Scope.READ)
    counts = {name: await _unredeemed(api, read, sc) for name, sc in collections.items()}
    assert counts == EXPECTED


def _holds(engine: Engine, definition: ProgramDefinition) -> bool:
    with engine.connect() as conn:
        query = text("SELECT count(*) FROM programs WHERE id = :id")
        return bool(conn.execute(query, {"id": definition.id}).scalar_one())


def _until_applied(bootstrap: str, worker: WorkerProcess, topic: str, sent: int) -> None:
    progress = GroupProgress(bootstrap, worker.group, topic)
    try:
        progress.wait_until_committed(sent, 60, worker.log)
    finally:
        progress.close()


async def _enroll(api: httpx.AsyncClient, key: str, member: str) -> str:
    response = await api.post(
        "/publisher.v1/wallet.stamp-collection/create",
        json={"loyalty_program_id": COFFEE.id, "member_id": member},
        headers=bearer(key),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def _unredeemed(api: httpx.AsyncClient, key: str, collection_id: str) -> int:
    response = await api.post(
        "/publisher.v1/wallet.stamp-collection/get", json={"id": collection_id}, headers=bearer(key)
    )
    assert response.status_code == 200, response.text
    return int(response.json()["unredeemed_purchases"])
