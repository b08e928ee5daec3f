"""Fixtures of the fault tests: a database per test, worker processes, servers that can fail.

Each test here gets a database of its own (a worker of a test that failed may still be
writing when the next starts), and stops every worker it started.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from autostamp.embedded import (
    EmbeddedPostgres,
    broker_binary,
    free_port,
    throwaway_database,
    wait_for_port,
)
from autostamp.settings import TopicSettings
from autostamp.topics import ensure_topics
from ledger import migrate
from streams.kafka import KafkaPublisher
from tests.faults.processes import ProxiedBroker, Workers, nullpool_engine
from tests.streams.conftest import Ledger
from tests.support.tcp_proxy import TcpProxy
from tests.support.topics import topic_names


@pytest.fixture
def empty_database(postgres_server_url: str) -> Iterator[str]:
    """A database of this test alone, with no schema yet."""
    with throwaway_database(postgres_server_url, "autostamp_fault") as url:
        yield url


@pytest.fixture
def database_url(empty_database: str) -> str:
    """A database of this test alone, migrated to head (it shadows the session's)."""
    engine = nullpool_engine(empty_database)
    migrate.upgrade(engine)
    engine.dispose()
    return empty_database


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = nullpool_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def ledger(engine: Engine) -> Ledger:
    return Ledger(engine)


@pytest.fixture
def publisher(kafka_bootstrap: str) -> KafkaPublisher:
    return KafkaPublisher({"bootstrap.servers": kafka_bootstrap})


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL server of this test alone, to stop and start; its `autostamp` is at head."""
    server = EmbeddedPostgres(tmp_path / "postgres", free_port())
    server.start()
    try:
        engine = nullpool_engine(server.url())
        migrate.upgrade(engine)
        engine.dispose()
        yield server
    finally:
        server.stop()


@pytest.fixture
def four_partitions(kafka_bootstrap: str) -> TopicSettings:
    """Topics of this test with four partitions each: room for two workers to share."""
    names = topic_names(4)
    ensure_topics({"bootstrap.servers": kafka_bootstrap}, names)
    return names


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    running = Workers(tmp_path)
    yield running
    running.stop_all()


@pytest.fixture
def proxied_broker(tmp_path: Path) -> Iterator[ProxiedBroker]:
    """A broker of this test alone, reachable only through a proxy the test can cut."""
    port = free_port()
    proxy = TcpProxy(("127.0.0.1", port)).start()
    listener, advertised = f"tcp://127.0.0.1:{port}", f"tcp://{proxy.address}"
    argv = [str(broker_binary()), "broker", "--listener-url", listener]
    argv += ["--advertised-listener-url", advertised, "--storage-engine", "memory://tansu/"]
    with (tmp_path / "tansu.log").open("ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
    try:
        wait_for_port("127.0.0.1", port, 30, "the proxied broker")
        yield ProxiedBroker(proxy, process)
    finally:
        proxy.stop()
        process.terminate()
        process.wait(10)
