"""The worker's Prometheus metrics: transactions by outcome, batch latency, lag, dead letters,
and program definitions by outcome.

Updated once per applied part of a batch, never per message, so they cost nothing measurable
on the hot path. Served on a port of the worker's own (`autostamp.wiring.serve_metrics`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ledger.batch import BatchOutcome
from ledger.programs import Verdict

if TYPE_CHECKING:
    from streams.service import Judgement

OUTCOMES = ("applied", "repeated", "unmatched", "dead_lettered")
"""Every consumed transaction is exactly one of these (`ledger.batch.BatchOutcome`)."""
EFFECTS = ("stamps", "voids", "rewards")
_BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class WorkerMetrics:
    """One worker's metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.transactions = Counter(
            "autostamp_worker_transactions",
            "Transactions consumed, by outcome: applied (had an effect), repeated (seen "
            "before), unmatched (no program wanted it), dead_lettered (refused).",
            ["outcome"],
            registry=self.registry,
        )
        self.effects = Counter(
            "autostamp_worker_effects",
            "What applied transactions did to the ledger: stamps, voids and rewards.",
            ["kind"],
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "autostamp_worker_batch_duration_seconds",
            "Time to apply one part of a fetched batch, database commit included.",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.lag = Gauge(
            "autostamp_worker_consumer_lag",
            "Messages of the transactions topic not yet applied, per partition this worker holds.",
            ["partition"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "autostamp_worker_dead_letters",
            "Messages refused and kept as dead letters, by the topic they came from.",
            ["source"],
            registry=self.registry,
        )
        self.definitions = Counter(
            "autostamp_worker_program_definitions",
            "Program definitions read from the programs topic, by outcome: applied, unchanged "
            "(the version held, again), superseded (older than the version held: changed "
            "nothing) and refused (dead-lettered).",
            ["outcome"],
            registry=self.registry,
        )
        self._outcomes = {name: self.transactions.labels(name) for name in OUTCOMES}
        self._effects = {name: self.effects.labels(name) for name in EFFECTS}
        self._transactions_dead = self.dead_letters.labels("transactions")
        self.flow = FlowTally()

    def applied(self, outcome: BatchOutcome, seconds: float) -> None:
        """Count what one part of a batch did, and how long it took."""
        for name, counter in self._outcomes.items():
            if value := getattr(outcome, name):
                counter.inc(value)
        for name, counter in self._effects.items():
            if value := getattr(outcome, name):
                counter.inc(value)
        if outcome.dead_lettered:
            self._transactions_dead.inc(outcome.dead_lettered)
        self.batch_seconds.observe(seconds)
        self.flow.add(outcome)

    def judged_definitions(self, judged: Judgement) -> None:
        """Count what one batch of the programs topic did."""
        for verdict in Verdict:
            if found := len(judged.ids(verdict)):
                self.definitions.labels(verdict.value).inc(found)
        if judged.refused:
            self.definitions.labels("refused").inc(len(judged.refused))
            self.dead_letters.labels("programs").inc(len(judged.refused))

    def lags(self, by_partition: Mapping[int, int]) -> None:
        """The lag of each held partition; partitions no longer held are dropped."""
        self.lag.clear()
        for partition, lag in by_partition.items():
            self.lag.labels(str(partition)).set(lag)
        self.flow.lags = dict(by_partition)

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))


class FlowTally:
    """What this worker applied, by minute, since the console's flow was last recorded
    (`ledger.flow`), and the lags it measured last."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.minutes: dict[datetime, BatchOutcome] = {}
        self.lags: dict[int, int] = {}

    def add(self, outcome: BatchOutcome) -> None:
        minute = datetime.fromtimestamp(self.clock() // 60 * 60, UTC)
        self.minutes[minute] = self.minutes.get(minute, BatchOutcome()) + outcome

    def drain(self) -> tuple[dict[datetime, BatchOutcome], dict[int, int]]:
        """What to record now; the tally starts again from nothing."""
        minutes, self.minutes = self.minutes, {}
        return minutes, dict(self.lags)

    def restore(self, minutes: Mapping[datetime, BatchOutcome]) -> None:
        """Put back counts that could not be recorded, to go with the next ones."""
        for minute, outcome in minutes.items():
            self.minutes[minute] = self.minutes.get(minute, BatchOutcome()) + outcome
