"""`autostamp up` with nothing configured: everything embedded, supervised, stopped cleanly."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from autostamp.embedded import free_port, port_open

pytestmark = pytest.mark.slow


def _start(state: Path, ports: dict[str, int], log: Path) -> subprocess.Popen[bytes]:
    configured = ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")
    env = {k: v for k, v in os.environ.items() if k not in configured}
    env |= {
        "AUTOSTAMP_STATE_DIR": str(state),
        "AUTOSTAMP_API_PORT": str(ports["api"]),
        "AUTOSTAMP_DATABASE_EMBEDDED_PORT": str(ports["postgres"]),
        "AUTOSTAMP_KAFKA_EMBEDDED_PORT": str(ports["broker"]),
        "AUTOSTAMP_METRICS_WORKER_PORT": str(ports["worker_metrics"]),
        "AUTOSTAMP_METRICS_DISPATCHER_PORT": str(ports["dispatcher_metrics"]),
        "AUTOSTAMP_KAFKA_SESSION_TIMEOUT_S": "6",
        "AUTOSTAMP_KAFKA_REBALANCE_TIMEOUT_S": "6",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "autostamp", "up"], env=env, stdout=out, stderr=out
        )


def _ready(port: int, log: Path, timeout_s: float = 90) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
            if response.status_code == 200:
                body: dict[str, str] = response.json()
                return body
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"API not ready in {timeout_s}s\n{log.read_text()[-4000:]}")


def _serving(port: int, metric: str, log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if metric in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"no {metric} on port {port} in {timeout_s}s\n{log.read_text()[-4000:]}")


def _stop(process: subprocess.Popen[bytes], log: Path) -> None:
    process.send_signal(signal.SIGINT)
    try:
        assert process.wait(60) == 0, log.read_text()[-4000:]
    finally:
        if process.poll() is None:
            process.kill()


def test_up_brings_everything_up_and_a_restart_keeps_the_data(
    outside_state_dir: Path, tmp_path: Path
) -> None:
    state, log = outside_state_dir, tmp_path / "up.log"
    ports = {
        name: free_port()
        for name in ("api", "postgres", "broker", "worker_metrics", "dispatcher_metrics")
    }
    dsn = f"host=127.0.0.1 port={ports['postgres']} user=postgres dbname=autostamp"

    process = _start(state, ports, log)
    try:
        assert _ready(ports["api"], log) == {"database": "ok", "broker": "ok"}
        for role, metric in (("worker", "worker_transactions"), ("dispatcher", "webhook_queue")):
            _serving(ports[f"{role}_metrics"], f"autostamp_{metric}", log)
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(dsn, connect_timeout=5)
        password = (state / "postgres" / "superuser.key").read_text().strip()
        dsn += f" password={password}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO api_keys (id, name, prefix, secret_sha256, scope) "
                "VALUES ('key_kept', 'Kept', 'kept', repeat('0', 64), 'read')"
            )
    finally:
        _stop(process, log)
    for port in ports.values():
        assert not port_open("127.0.0.1", port), f"port {port} still open after stop"
    text = log.read_text()
    assert password not in text
    assert "IN MEMORY ONLY" in text
    assert "all processes stopped" in text
    key = (state / "secret.key").read_text()
    assert stat.S_IMODE((state / "secret.key").stat().st_mode) == 0o600

    process = _start(state, ports, log)
    try:
        _ready(ports["api"], log)
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT name FROM api_keys").fetchall() == [("Kept",)]
    finally:
        _stop(process, log)
    assert (state / "secret.key").read_text() == key
