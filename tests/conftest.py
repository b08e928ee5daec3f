"""Real services for the tests: PostgreSQL and a Kafka-protocol broker, isolated per test run."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from autostamp.embedded import (
    EmbeddedBroker,
    EmbeddedPostgres,
    free_port,
    throwaway_database,
    which_docker_engine,
)
from autostamp.settings import TopicSettings
from autostamp.topics import ensure_topics
from autostamp.wiring import libpq_url, sqlalchemy_url
from ledger import migrate
from ledger.schema import Base
from tests.support.topics import topic_names

pytest_plugins = ["tests.support.log_audit"]

SERVICE_FIXTURES = frozenset({"postgres_server_url", "kafka_bootstrap"})
_tier = {"fast": False}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fast",
        action="store_true",
        help="only the pure tests (no database, no broker, not slow), with fewer examples",
    )


def pytest_configure(config: pytest.Config) -> None:
    _tier["fast"] = bool(config.getoption("--fast"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark what needs PostgreSQL or a broker; the fast tier leaves it, and the slow, out."""
    kept, left = [], []
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)
        slow = item.get_closest_marker("slow") or item.get_closest_marker("services")
        (left if _tier["fast"] and slow else kept).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept


def examples(n: int) -> int:
    """Hypothesis examples for a property: all of them, or a twentieth in the fast tier."""
    return max(20, n // 20) if _tier["fast"] else n


LOCAL_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=2):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server to create test databases on: TEST_DATABASE_URL, the local one, or embedded."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield sqlalchemy_url(configured)
        return
    if _answers(LOCAL_SERVER):
        yield LOCAL_SERVER
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("postgres"), free_port())
    server.start()
    try:
        yield server.url("postgres")
    finally:
        server.stop()


def scratch_database(server_url: str) -> contextlib.AbstractContextManager[str]:
    """A new, empty database on the server, dropped afterwards."""
    return throwaway_database(server_url, "autostamp_test")


@pytest.fixture(scope="session")
def database_url(postgres_server_url: str) -> Iterator[str]:
    """A database of this test session, migrated to head."""
    with scratch_database(postgres_server_url) as url:
        engine = create_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A synchronous engine on a database emptied after each test."""
    engine = create_engine(database_url)
    yield engine
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
async def async_engine(engine: Engine, database_url: str) -> AsyncIterator[AsyncEngine]:
    """An asyncio engine on the same per-test database."""
    async_engine = create_async_engine(database_url)
    yield async_engine
    await async_engine.dispose()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker: TEST_KAFKA_BOOTSTRAP_SERVERS, a testcontainers Kafka, or the embedded Tansu."""
    configured = os.environ.get("TEST_KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    if os.environ.get("AUTOSTAMP_TEST_DOCKER") == "1" and which_docker_engine():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    broker = EmbeddedBroker(free_port(), tmp_path_factory.mktemp("broker") / "tansu.log")
    broker.start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def topics(kafka_bootstrap: str) -> TopicSettings:
    """Topic names of this test only, created on the broker."""
    names = topic_names()
    ensure_topics({"bootstrap.servers": kafka_bootstrap}, names)
    return names


@pytest.fixture
def outside_state_dir() -> Iterator[Path]:
    """A state directory outside pytest's own, for tests that run `autostamp up`: when root
    runs the tests, the embedded PostgreSQL runs as another user, and a pytest session
    starting beside this one closes pytest's directory to other users, and so to the
    server's `pg_ctl stop`."""
    path = Path(tempfile.mkdtemp(prefix="autostamp-test-state-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
