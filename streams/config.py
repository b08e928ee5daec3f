"""What the stream worker is told: plain values, filled in from the settings by the wiring."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Topics:
    """The Kafka topics the worker reads and writes."""

    transactions: str = "transactions"
    dead_letter: str = "transactions-dead-letter"
    programs: str = "programs"
    payouts: str = "payouts"


@dataclass(frozen=True)
class WorkerConfig:
    """Kafka clients, consumer group timing and batching of one worker process."""

    client: Mapping[str, Any]  # librdkafka settings: bootstrap.servers, client.id, security
    group: str = "autostamp"
    topics: Topics = field(default_factory=Topics)
    session_timeout_s: float = 30.0
    rebalance_timeout_s: float = 30.0
    heartbeat_interval_s: float = 3.0
    batch_size: int = 2000
    batch_within_s: float = 0.2
    commit_interval_s: float = 1.0
    relay_interval_s: float = 0.5
    # Where faust keeps its app's local data (it writes a directory there at start).
    data_dir: str = ".autostamp/faust"
    # The programs topic's keys (`streams.program_signing`): the first signs, all verify.
    # None: every definition on the topic is refused.
    program_keys: tuple[str, ...] = field(default=(), repr=False)

    @property
    def bootstrap_servers(self) -> str:
        return str(self.client["bootstrap.servers"])
