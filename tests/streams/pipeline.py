"""A worker process, the broker and the ledger, driven as one pipeline by a test."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from autostamp.settings import TopicSettings
from ledger.erasure import erase_member
from ledger.reconcile import Difference, reconcile
from ledger.schema import Base
from ledger.unenrolling import unenroll
from rules import CardTransaction, ProgramDefinition
from streams.kafka import KafkaPublisher, ProducerRecord
from tests.streams.factories import signed
from tests.streams.worker import GroupProgress, WorkerProcess, wait_for
from tests.webhooks.support import TEST_KEYRING

# Each step waits for the committed offsets: commit them often. A SIGKILLed member holds its
# partitions until its session expires: keep that short.
QUICK = {
    "AUTOSTAMP_KAFKA_COMMIT_INTERVAL_S": "0.1",
    "AUTOSTAMP_KAFKA_SESSION_TIMEOUT_S": "3",
    "AUTOSTAMP_KAFKA_REBALANCE_TIMEOUT_S": "3",
}
STEP_TIMEOUT_S = 90.0


class Pipeline:
    """The real things every example drives: a worker process, the broker, the ledger."""

    def __init__(
        self, worker: WorkerProcess, bootstrap: str, topics: TopicSettings, database_url: str
    ) -> None:
        self.worker, self.topics, self.database_url = worker, topics, database_url
        self.publisher = KafkaPublisher({"bootstrap.servers": bootstrap})
        self.progress = GroupProgress(bootstrap, worker.group, topics.transactions)
        self.produced = 0  # messages on the transactions topic, over every example
        self.runner = asyncio.Runner()
        self.async_engine = create_async_engine(database_url)

    def produce(self, events: Iterable[CardTransaction]) -> None:
        """Send events as a bank does: JSON on the transactions topic, keyed by member."""
        topic = self.topics.transactions
        self.produced += self.publisher.publish(
            ProducerRecord(topic, e.model_dump_json().encode(), e.member_id.encode())
            for e in events
        )

    def wait_until_applied(self) -> None:
        """Wait until the worker has applied every transaction produced so far."""
        self.progress.wait_until_committed(self.produced, STEP_TIMEOUT_S, self.worker.log)
        assert self.worker.running(), f"the worker stopped\n{self.worker.log()}"

    def apply(self, programs: Iterable[ProgramDefinition]) -> None:
        """Send definitions on the programs topic; return once the ledger holds them."""
        sent = list(programs)
        self.publisher.publish(signed(self.topics.programs, *sent))
        wanted = {(p.id, p.version) for p in sent}
        wait_for(
            lambda: wanted <= {(r.id, r.version) for r in self.rows("SELECT * FROM programs")},
            STEP_TIMEOUT_S,
            f"the ledger to hold {sorted(wanted)}",
            self.worker.log,
        )

    def forget_other_examples(self) -> None:
        """Empty the ledger but for the programs (worker caches follow their revision), so
        whatever an earlier example left, failed or not, the whole ledger is this one's."""
        kept = {"programs", "program_versions", "program_revision", "api_keys"}
        # Dependents first, the order the worker's relay locks rewards and collections in.
        tables = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name not in kept]
        self.rows(f"TRUNCATE {', '.join(tables)}")

    def rows(self, sql: str, **params: Any) -> list[Any]:
        """Run one statement in a transaction of its own; the rows it returns, if any."""

        async def read() -> list[Any]:
            async with self.async_engine.begin() as conn:
                result = await conn.execute(text(sql), params)
                return list(result) if result.returns_rows else []

        return self.runner.run(read())

    def differences(self) -> list[Difference]:
        async def check() -> list[Difference]:
            async with self.async_engine.connect() as conn:
                await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
                return (await reconcile(conn)).differences

        return self.runner.run(check())

    def collections_state(self, ids: list[str]) -> dict[str, Any]:
        """These collections as `model_state` shows the model's: counters, stamps, rewards."""
        state: dict[str, Any] = {i: {"stamps": {}, "rewards": {}} for i in ids}
        where = "WHERE collection_id = ANY(:ids)"
        for c in self.rows("SELECT * FROM stamp_collections WHERE id = ANY(:ids)", ids=ids):
            state[c.id]["counter"] = (c.unredeemed_purchases, c.owed_stamps, c.cycle)
        for s in self.rows(f"SELECT * FROM stamps {where}", ids=ids):
            made = (s.status, s.transaction_id, s.void_transaction_id)
            state[s.collection_id]["stamps"][s.purchase_id] = made
        for r in self.rows(f"SELECT * FROM rewards {where}", ids=ids):
            state[r.collection_id]["rewards"][r.cycle] = (r.amount, r.currency, r.transaction_id)
        return state

    def erase(self, member_id: str, now: datetime) -> None:
        """Erase a member as `member/erase` does, with the worker's keys."""

        async def erase() -> None:
            async with self.async_engine.begin() as conn:
                await erase_member(conn, TEST_KEYRING, member_id, now)

        self.runner.run(erase())

    def unenroll(self, collection_id: str, now: datetime) -> None:
        async def end() -> None:
            async with self.async_engine.begin() as conn:
                await unenroll(conn, collection_id, now)

        self.runner.run(end())

    def close(self) -> None:
        self.runner.run(self.async_engine.dispose())
        self.runner.close()
        self.progress.close()
        del self.publisher  # its client goes now, not when the broker has gone too
