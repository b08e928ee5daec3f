"""`autostamp demo` with nothing running: it starts `autostamp up`, and stops it on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autostamp.embedded import free_port, port_open

pytestmark = pytest.mark.slow

PORTS = ("API", "DATABASE_EMBEDDED", "KAFKA_EMBEDDED", "METRICS_WORKER", "METRICS_DISPATCHER")


def _wait_for_output(
    output: Path, text: str, process: subprocess.Popen[bytes], timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in output.read_text():
        assert process.poll() is None, output.read_text()
        assert time.monotonic() < deadline, f"no {text!r} in {timeout_s}s\n{output.read_text()}"
        time.sleep(0.2)


def test_demo_starts_up_feeds_it_and_stops_everything_on_sigint(outside_state_dir: Path) -> None:
    state = outside_state_dir
    ports = {name: free_port() for name in PORTS}
    output = state / "demo.out"
    configured = ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "AUTOSTAMP_PROGRAMS_SIGNING_KEY")
    env = {k: v for k, v in os.environ.items() if k not in configured}
    env |= {f"AUTOSTAMP_{name}_PORT": str(port) for name, port in ports.items()}
    env |= {"AUTOSTAMP_STATE_DIR": str(state), "AUTOSTAMP_KAFKA_SESSION_TIMEOUT_S": "6"}
    argv = [sys.executable, "-m", "autostamp", "demo", "--rate", "30", "--seed", "3"]
    with output.open("wb") as out:
        demo = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_output(output, "] sent ", demo, timeout_s=120)
        demo.send_signal(signal.SIGINT)
        assert demo.wait(120) == 0, output.read_text()
    finally:
        if demo.poll() is None:
            demo.kill()
    text = output.read_text()

    assert "starting autostamp up" in text
    assert f"console: http://127.0.0.1:{ports['API']}/console/ticket/act_" in text
    assert "interrupted: stopping" in text and "fed for" in text
    assert "autostamp up stopped (exit status 0)" in text
    for name, port in ports.items():
        assert not port_open("127.0.0.1", port), f"{name} port {port} still open"
    assert "all processes stopped" in (state / "logs" / "demo-up.log").read_text()
