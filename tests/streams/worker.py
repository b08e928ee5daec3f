"""Running `autostamp worker` as its own process against the test database and broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from autostamp.embedded import free_port
from autostamp.settings import TopicSettings
from tests.webhooks.support import TEST_KEY

# What the test workers verify program definitions with, and the tests sign them with.
PROGRAMS_KEY = "the-programs-signing-key-of-the-tests-0123456789"


def worker_environment(database_url: str, bootstrap: str, topics: TopicSettings) -> dict[str, str]:
    return os.environ | {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "AUTOSTAMP_KAFKA_CONSUMER_GROUP": f"autostamp-test-{uuid.uuid4().hex[:8]}",
        "AUTOSTAMP_TOPIC_TRANSACTIONS": topics.transactions,
        "AUTOSTAMP_TOPIC_DEAD_LETTER": topics.dead_letter,
        "AUTOSTAMP_TOPIC_PROGRAMS": topics.programs,
        "AUTOSTAMP_TOPIC_PAYOUTS": topics.payouts,
        "AUTOSTAMP_TOPIC_PARTITIONS": str(topics.partitions),
        "AUTOSTAMP_PROGRAMS_SIGNING_KEY": PROGRAMS_KEY,
        "AUTOSTAMP_SECRET_KEY": TEST_KEY,
        "AUTOSTAMP_KAFKA_SESSION_TIMEOUT_S": "3",
        "AUTOSTAMP_KAFKA_REBALANCE_TIMEOUT_S": "3",
        "AUTOSTAMP_KAFKA_HEARTBEAT_INTERVAL_S": "1",
        "AUTOSTAMP_KAFKA_PROGRAMS_REFRESH_S": "0.5",
        "AUTOSTAMP_KAFKA_RELAY_INTERVAL_S": "0.2",
        "AUTOSTAMP_KAFKA_BATCH_SIZE": "200",
        "AUTOSTAMP_KAFKA_BATCH_WITHIN_S": "0.05",
        # A port of its own: tests run workers side by side.
        "AUTOSTAMP_METRICS_WORKER_PORT": str(free_port()),
    }


@dataclass
class WorkerProcess:
    """One worker process; its output goes to a log file the test can show on failure."""

    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None)

    def start(self) -> None:
        argv = [sys.executable, "-m", "autostamp", "worker"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(argv, env=self.env, stdout=log, stderr=log)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no offset commit on the way out."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    @property
    def group(self) -> str:
        """The consumer group its transactions consumer commits in."""
        return self.env["AUTOSTAMP_KAFKA_CONSUMER_GROUP"]

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class GroupProgress:
    """How many messages of a topic a consumer group has committed, read without joining it.

    The worker stores an offset only after the ledger committed its batch, so a group that has
    committed as many messages as were produced has applied all of them. Counted, never
    compared with the high watermark: the embedded broker answers ListOffsets(latest) with the
    base offset of the last record batch plus one, however many records that batch holds.
    """

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        from confluent_kafka import Consumer

        # Never subscribed: this client reads the group's offsets and is no member of it.
        self.consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
        )
        self.topic = topic
        metadata = self.consumer.list_topics(topic, timeout=10).topics[topic]
        self.partitions = sorted(metadata.partitions)

    def committed(self) -> int:
        """Messages the group has committed, over every partition (offsets start at 0)."""
        from confluent_kafka import TopicPartition

        wanted = [TopicPartition(self.topic, p) for p in self.partitions]
        # No commit yet reads as a negative sentinel.
        return sum(max(tp.offset, 0) for tp in self.consumer.committed(wanted, timeout=10))

    def reached(self, produced: int) -> bool:
        from confluent_kafka import KafkaException

        try:
            return self.committed() >= produced
        except KafkaException:  # e.g. the coordinator moving during a rebalance: ask again
            return False

    def wait_until_committed(
        self, produced: int, timeout_s: float, log: str | Callable[[], str] = ""
    ) -> None:
        """Wait until the group has committed the first `produced` messages of the topic."""
        what = f"the group to commit {produced} messages of {self.topic}"
        wait_for(lambda: self.reached(produced), timeout_s, what, log)

    def close(self) -> None:
        self.consumer.close()


def wait_for(
    condition: Callable[[], bool],
    timeout_s: float,
    what: str,
    log: str | Callable[[], str] = "",
) -> None:
    """Poll `condition` until it holds; on timeout, fail showing `log` (read only then)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            shown = log() if callable(log) else log
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}\n{shown}")
        time.sleep(0.1)


def scrape(port: str) -> dict[str, float]:
    """The samples a metrics port serves, by name and labels as Prometheus writes them."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples
