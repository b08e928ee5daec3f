"""Fixtures of the stream tests: a stamping service on the per-test database with the
programs of the test, the ledger read back, and a worker process."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine

from autostamp.settings import TopicSettings
from ledger.events import EVENT_TYPES
from ledger.failures import Backoff
from ledger.webhook_secrets import seal_secret
from rules import ProgramDefinition
from streams.service import StampingService
from tests.streams.factories import save_programs
from tests.streams.worker import WorkerProcess, worker_environment
from tests.webhooks.support import TEST_KEYRING


@pytest.fixture
def make_service(engine: Engine, async_engine: AsyncEngine) -> Callable[..., Any]:
    async def make(*programs: ProgramDefinition, **options: Any) -> StampingService:
        save_programs(engine, *programs)
        quick = Backoff(attempts=2, first_delay_s=0.01)
        return StampingService(async_engine, backoff=quick, **options)

    return make


class Ledger:
    """Reads of the ledger that the tests assert on."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar_one()

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params))

    def counter(self, collection_id: str) -> tuple[int, int, int]:
        row = self.rows(
            "SELECT unredeemed_purchases, owed_stamps, cycle FROM stamp_collections WHERE id = :id",
            id=collection_id,
        )[0]
        return (row.unredeemed_purchases, row.owed_stamps, row.cycle)

    def live_stamps(self, collection_id: str) -> list[str]:
        return [
            r.purchase_id
            for r in self.rows(
                "SELECT purchase_id FROM stamps WHERE collection_id = :id AND status = 'live' "
                "ORDER BY id",
                id=collection_id,
            )
        ]

    def rewards(self, collection_id: str) -> list[tuple[int, str, int]]:
        return [
            (r.cycle, r.purchase_id, r.amount)
            for r in self.rows(
                "SELECT cycle, purchase_id, amount FROM rewards WHERE collection_id = :id "
                "ORDER BY cycle",
                id=collection_id,
            )
        ]

    def events(self) -> list[str]:
        return [r.event_type for r in self.rows("SELECT event_type FROM webhook_messages")]

    def state(self) -> dict[str, Any]:
        """Everything that must come out the same whatever the delivery order and count."""
        return {
            "collections": self.rows(
                "SELECT id, unredeemed_purchases, owed_stamps, cycle FROM stamp_collections "
                "ORDER BY id"
            ),
            "stamps": self.rows(
                "SELECT collection_id, purchase_id, status FROM stamps "
                "ORDER BY collection_id, purchase_id"
            ),
            "rewards": self.rows(
                "SELECT collection_id, cycle, amount FROM rewards ORDER BY collection_id, cycle"
            ),
        }


@pytest.fixture
def ledger(engine: Engine) -> Ledger:
    return Ledger(engine)


@pytest.fixture
def subscriber(engine: Engine) -> None:
    """An endpoint subscribed to every event type: the outbox writes only what someone hears."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO webhook_endpoints (id, url, event_types, secret) VALUES "
                "('ep_all', 'https://hooks.example.com/all', CAST(:types AS jsonb), :secret)"
            ),
            {
                "secret": seal_secret(TEST_KEYRING, "ep_all", "secret", "whsec_eA=="),
                "types": json.dumps(list(EVENT_TYPES)),
            },
        )


@pytest.fixture
def worker(
    engine: Engine, database_url: str, kafka_bootstrap: str, topics: TopicSettings, tmp_path: Path
) -> Iterator[WorkerProcess]:
    """A worker process on the test's topics; it stops before the test's tables are emptied."""
    process = WorkerProcess(
        worker_environment(database_url, kafka_bootstrap, topics), tmp_path / "worker.log"
    )
    process.start()
    yield process
    process.stop()
