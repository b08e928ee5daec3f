"""Worker processes as the fault tests drive them: started, watched through their logs, stopped."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

from autostamp.settings import TopicSettings
from streams.consumer import held_partitions
from tests.streams.worker import WorkerProcess, wait_for, worker_environment
from tests.support.tcp_proxy import TcpProxy

# Infrastructure failures retried for about a second in all, where a test waits for the exit.
QUICK_RETRIES = {
    "AUTOSTAMP_RETRY_ATTEMPTS": "3",
    "AUTOSTAMP_RETRY_FIRST_DELAY_S": "0.2",
    "AUTOSTAMP_RETRY_MAX_DELAY_S": "1",
}


def nullpool_engine(url: str) -> Engine:
    # No pooled connection survives a server restart to fail the next read.
    return create_engine(url, poolclass=NullPool)


@dataclass
class Workers:
    """The worker processes a test started, each with its own log; all stopped afterwards."""

    directory: Path
    started: list[WorkerProcess] = field(default_factory=list)

    def start(self, env: dict[str, str]) -> WorkerProcess:
        name = f"worker-{len(self.started) + 1}"
        # faust's data directory (empty with the memory store) goes here, not into the checkout.
        env = {"F_DATADIR": str(self.directory / f"{name}-data")} | env
        worker = WorkerProcess(env, self.directory / f"{name}.log")
        worker.start()
        self.started.append(worker)
        return worker

    def logs(self) -> str:
        return "\n".join(f"--- {w.log_path.name}\n{w.log()}" for w in self.started)

    def wait_for(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        """`tests.streams.worker.wait_for`, failing with the workers' logs as they are then."""
        try:
            wait_for(condition, timeout_s, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()


def fault_environment(
    database_url: str, bootstrap: str, topics: TopicSettings, **extra: str
) -> dict[str, str]:
    """A worker's environment for these tests: its own consumer group, `extra` on top."""
    return worker_environment(database_url, bootstrap, topics) | extra


def running(worker: WorkerProcess) -> bool:
    """Started and not exited: the same process, never restarted."""
    return worker.process is not None and worker.process.poll() is None


def whole_log(worker: WorkerProcess) -> str:
    return worker.log_path.read_text(errors="replace")


def exit_code(worker: WorkerProcess, timeout_s: float) -> int:
    """The worker's exit code, once it has exited by itself within `timeout_s`."""
    assert worker.process is not None
    try:
        return worker.process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"the worker did not exit within {timeout_s}s\n{worker.log()}"
        ) from None


def owned_partitions(worker: WorkerProcess) -> set[str]:
    """The transactions partitions the worker holds now, from its consumer's log lines."""
    return held_partitions(whole_log(worker))


@dataclass
class ProxiedBroker:
    """A Tansu broker that advertises a proxy's address, so every client goes through it."""

    proxy: TcpProxy
    process: subprocess.Popen[bytes]

    @property
    def bootstrap_servers(self) -> str:
        return self.proxy.address
