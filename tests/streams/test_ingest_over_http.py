"""Transactions posted to the API reach the real worker, and sending them again changes nothing."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from autostamp.settings import TopicSettings
from tests.publisher_api.conftest import bearer
from tests.publisher_api.ingest_support import INGEST, client_of, ingest_app, ingest_key, sink_to
from tests.streams.conftest import Ledger
from tests.streams.factories import enroll, program, save_programs, tx
from tests.streams.worker import GroupProgress, WorkerProcess, wait_for

pytestmark = pytest.mark.kafka


async def test_posted_transactions_are_stamped_once_however_often_they_are_sent(
    engine: Engine,
    async_engine: AsyncEngine,
    ledger: Ledger,
    kafka_bootstrap: str,
    topics: TopicSettings,
    worker: WorkerProcess,
) -> None:
    save_programs(engine, program(threshold=3))
    collections = {member: enroll(engine, member=member) for member in ("m1", "m2")}
    batch = [tx(f"t{n}", member=f"m{n % 2 + 1}", amount=400 + n) for n in range(7)]
    body = orjson.dumps(batch)
    key = (await ingest_key(async_engine)).token
    headers = {**bearer(key), "Content-Type": "application/json"}
    sink = sink_to(kafka_bootstrap, topics)
    try:
        async with client_of(ingest_app(async_engine, sink)) as client:
            first = await client.post(INGEST, content=body, headers=headers)
            wait_for(lambda: ledger.scalar(STAMPS) == 7, 60, "7 stamps", worker.log)
            after_first = ledger.state()
            again = await client.post(INGEST, content=body, headers=headers)
    finally:
        sink.close()
    progress = GroupProgress(kafka_bootstrap, worker.group, topics.transactions)
    try:
        progress.wait_until_committed(14, 60, worker.log)
    finally:
        progress.close()

    assert first.json()["accepted"] == again.json()["accepted"] == 7
    assert [item["seen_before"] for item in first.json()["items"]] == [False] * 7
    assert [item["seen_before"] for item in again.json()["items"]] == [True] * 7
    assert ledger.state() == after_first
    assert ledger.scalar(STAMPS) == 7
    assert ledger.live_stamps(collections["m1"]) == ["t0", "t2", "t4", "t6"]
    assert [cycle for cycle, _, _ in ledger.rewards(collections["m1"])] == [1]


STAMPS = "SELECT count(*) FROM stamps"
