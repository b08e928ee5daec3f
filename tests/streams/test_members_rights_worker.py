"""Members' rights as the running worker honours them: unenrolled and erased members."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine

from autostamp.settings import TopicSettings
from ledger.database import transaction
from ledger.erasure import erase_member
from ledger.reconcile import reconcile
from ledger.unenrolling import unenroll
from streams.kafka import KafkaPublisher, ProducerRecord
from tests.streams.conftest import Ledger
from tests.streams.factories import T0, enroll, program, save_programs, tx, undo
from tests.streams.worker import WorkerProcess, wait_for
from tests.webhooks.support import TEST_KEYRING

pytestmark = pytest.mark.kafka

REMEMBERED = "SELECT (SELECT count(*) FROM purchase_events) + (SELECT count(*) FROM undos)"


@pytest.fixture
def publisher(kafka_bootstrap: str) -> KafkaPublisher:
    return KafkaPublisher({"bootstrap.servers": kafka_bootstrap})


def produce(publisher: KafkaPublisher, topic: str, *bodies: dict[str, object]) -> None:
    publisher.publish(
        [ProducerRecord(topic, orjson.dumps(b), str(b["member_id"]).encode()) for b in bodies]
    )


def applied(ledger: Ledger, worker: WorkerProcess, count: int) -> None:
    wait_for(lambda: ledger.scalar(REMEMBERED) == count, 60, f"{count} events", worker.log())


def enroll_again(engine: Engine, member: str, at: datetime) -> str:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO stamp_collections (id, program_id, member_id, created_at) "
                "VALUES ('sc_again', 'lp_coffee', :member, :at)"
            ),
            {"member": member, "at": at},
        )
    return "sc_again"


async def no_differences(async_engine: AsyncEngine) -> bool:
    async with transaction(async_engine) as conn:
        return not (await reconcile(conn)).differences


async def test_an_unenrolled_collection_stamps_nothing_keeps_its_history_and_a_new_one_stamps(
    engine: Engine,
    async_engine: AsyncEngine,
    ledger: Ledger,
    publisher: KafkaPublisher,
    topics: TopicSettings,
    worker: WorkerProcess,
) -> None:
    save_programs(engine, program(threshold=2))
    old = enroll(engine, member="m1")
    produce(publisher, topics.transactions, tx("t1"), tx("t2"), tx("t3"))
    applied(ledger, worker, 3)
    assert ledger.rewards(old) == [(1, "t2", 450)]

    async with transaction(async_engine) as conn:
        await unenroll(conn, old, datetime.now(UTC))
    later = T0 + timedelta(hours=3)
    produce(publisher, topics.transactions, tx("t4", at=later), undo("r3", "t3"))
    applied(ledger, worker, 5)

    # t4 stamps nothing; the refund of t3, bought while enrolled, still voids its stamp.
    assert ledger.live_stamps(old) == ["t1", "t2"]
    assert ledger.counter(old) == (0, 0, 2)
    assert ledger.rewards(old) == [(1, "t2", 450)]

    again = enroll_again(engine, "m1", T0 + timedelta(hours=4))
    produce(publisher, topics.transactions, tx("t5", at=T0 + timedelta(hours=5)))
    applied(ledger, worker, 6)
    assert ledger.live_stamps(again) == ["t5"]
    assert ledger.live_stamps(old) == ["t1", "t2"]
    assert await no_differences(async_engine)


async def test_a_purchase_of_an_erased_member_arriving_later_stamps_nothing(
    engine: Engine,
    async_engine: AsyncEngine,
    ledger: Ledger,
    publisher: KafkaPublisher,
    topics: TopicSettings,
    worker: WorkerProcess,
) -> None:
    save_programs(engine, program(threshold=3))
    collection = enroll(engine, member="m-erase-7f3a")
    produce(publisher, topics.transactions, tx("t1", member="m-erase-7f3a"))
    applied(ledger, worker, 1)
    async with transaction(async_engine) as conn:
        first = await erase_member(conn, TEST_KEYRING, "m-erase-7f3a", datetime.now(UTC))
    assert (first.collections, first.purchase_events) == (1, 1)

    produce(publisher, topics.transactions, tx("t2", member="m-erase-7f3a"))
    applied(ledger, worker, 2)

    # The worker applies it as the pseudonym's: the erased member's collection is
    # unenrolled, so it stamps nothing, and nothing under the member id is left to rename.
    assert ledger.live_stamps(collection) == ["t1"]
    assert ledger.counter(collection) == (1, 0, 1)
    assert ledger.scalar("SELECT count(*) FROM stamp_collections") == 1
    assert (
        ledger.scalar(
            "SELECT count(*) FROM purchase_events WHERE member_id = :m", m=first.pseudonym
        )
        == 2
    )
    async with transaction(async_engine) as conn:
        again = await erase_member(conn, TEST_KEYRING, "m-erase-7f3a", datetime.now(UTC))
    assert again.pseudonym == first.pseudonym
    assert again.counts() == {kind: 0 for kind in again.counts()}
    assert await no_differences(async_engine)
