"""The embedded default: a PostgreSQL that keeps its data across restarts, and a broker."""

from __future__ import annotations

import stat
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest

from autostamp.embedded import (
    EmbeddedBroker,
    EmbeddedPostgres,
    free_port,
    let_others_traverse,
    port_open,
)
from autostamp.settings import Settings
from autostamp.supervisor import start_embedded
from autostamp.wiring import broker_metadata, programs_signing_keys
from ledger.errors import EmbeddedServiceError

# Each test starts a real PostgreSQL or broker of its own.
pytestmark = pytest.mark.services


def _dsn(server: EmbeddedPostgres) -> str:
    return server.url().replace("postgresql+psycopg://", "postgresql://")


def test_embedded_postgres_keeps_its_data_across_a_restart(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pg", free_port())
    server.start()
    try:
        with psycopg.connect(_dsn(server), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (value text)")
            conn.execute("INSERT INTO kept VALUES ('still here')")
        server.stop()
        assert not port_open(server.host, server.port)
        server.start()
        with psycopg.connect(_dsn(server)) as conn:
            assert conn.execute("SELECT value FROM kept").fetchone() == ("still here",)
    finally:
        server.stop()


def _without_password(server: EmbeddedPostgres) -> str:
    return f"host={server.host} port={server.port} user=postgres dbname=postgres"


def test_embedded_postgres_wants_its_generated_password(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pg", free_port())
    server.start()
    try:
        key = tmp_path / "pg" / "superuser.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert len(server.password) >= 40
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(_without_password(server), connect_timeout=5)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(_without_password(server), password="autostamp", connect_timeout=5)
        with psycopg.connect(_dsn(server)) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert not list((tmp_path / "pg").glob("initdb-password*"))
    finally:
        server.stop()


def test_a_server_made_with_trust_authentication_is_moved_to_the_password(
    tmp_path: Path,
) -> None:
    server = EmbeddedPostgres(tmp_path / "pg", free_port())
    server.start()
    server.stop()
    hba = server.data_dir / "pg_hba.conf"
    hba.write_text(hba.read_text().replace("scram-sha-256", "trust"))
    server.start()
    try:
        rules = [
            line.split()
            for line in hba.read_text().splitlines()
            if line.startswith(("local", "host"))
        ]
        assert rules
        assert all(rule[-1] == "scram-sha-256" for rule in rules)
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(_without_password(server), connect_timeout=5)
        with psycopg.connect(_dsn(server)) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()


def test_embedded_broker_answers_metadata_and_stops(tmp_path: Path) -> None:
    broker = EmbeddedBroker(free_port(), tmp_path / "broker.log")
    broker.start()
    try:
        assert broker.alive()
        assert isinstance(broker_metadata({"bootstrap.servers": broker.bootstrap_servers}), list)
    finally:
        broker.stop()
    assert not broker.alive()
    assert not port_open(broker.host, broker.port)


def test_embedded_broker_refuses_a_taken_port(tmp_path: Path) -> None:
    first = EmbeddedBroker(free_port())
    first.start()
    try:
        with pytest.raises(EmbeddedServiceError, match="is taken"):
            EmbeddedBroker(first.port).start()
    finally:
        first.stop()


def test_a_server_run_as_another_user_can_pass_through_private_folders(tmp_path: Path) -> None:
    # A checkout under a home or a mktemp folder (mode 0700) holds the server's binaries.
    private = tmp_path / "private"
    binaries = private / "venv" / "bin"
    binaries.mkdir(parents=True)
    private.chmod(0o700)

    let_others_traverse(binaries)

    assert private.stat().st_mode & 0o777 == 0o711  # passable, still not listable
    assert binaries.parent.stat().st_mode & 0o011 == 0o011


def test_the_embedded_broker_gets_a_programs_key_made_once_that_programs_apply_shares(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AUTOSTAMP_PROGRAMS_SIGNING_KEY", "KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AUTOSTAMP_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("AUTOSTAMP_KAFKA_EMBEDDED_PORT", str(free_port()))
    monkeypatch.setenv("DATABASE_URL", "postgresql://configured.example.com/autostamp")
    with ExitStack() as stack:
        env = start_embedded(Settings(), stack)
    path = tmp_path / "state" / "programs-signing.key"
    assert env["AUTOSTAMP_PROGRAMS_SIGNING_KEY"] == path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # `autostamp programs apply` beside it, with nothing configured, signs with the same key.
    assert programs_signing_keys(Settings()).keys == (path.read_text().strip(),)
