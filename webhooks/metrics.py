"""The dispatcher's Prometheus metrics: deliveries by outcome, queue depth, oldest pending, dead.

Attempts are counted as they are recorded; the backlog gauges are read from the ledger every
`BACKLOG_EVERY` by one short query, so they tell the whole outbox, whichever dispatcher sent
what. Served on a port of the dispatcher's own (`autostamp.wiring.serve_metrics`).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

BACKLOG_EVERY = timedelta(seconds=15)
ATTEMPT_OUTCOMES = ("delivered", "pending", "dead", "endpoint_disabled")
"""What an attempt left its delivery as: delivered, to be retried, dead, or held."""


@dataclass(frozen=True)
class Backlog:
    """The outbox as it stands: deliveries waiting (held ones apart) and dead ones."""

    pending: int
    oldest_pending_at: datetime | None
    held: int
    dead: int


class DispatcherMetrics:
    """One dispatcher's metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.attempts = Counter(
            "autostamp_webhook_deliveries",
            "Delivery attempts recorded, by what they left the delivery as: delivered, "
            "pending (to be retried), dead, endpoint_disabled (held for a disabled endpoint).",
            ["outcome"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "autostamp_webhook_queue_depth",
            "Deliveries waiting to be sent, due or not, across all dispatchers.",
            registry=self.registry,
        )
        self.oldest_pending = Gauge(
            "autostamp_webhook_oldest_pending_seconds",
            "Age of the oldest delivery waiting to be sent; 0 when none waits.",
            registry=self.registry,
        )
        self.held = Gauge(
            "autostamp_webhook_held",
            "Deliveries held for a disabled endpoint.",
            registry=self.registry,
        )
        self.dead = Gauge(
            "autostamp_webhook_dead",
            "Deliveries that failed every attempt and wait for a redeliver.",
            registry=self.registry,
        )
        self._outcomes = {name: self.attempts.labels(name) for name in ATTEMPT_OUTCOMES}

    def recorded(self, outcomes: Iterable[str]) -> None:
        for outcome, count in Tally(outcomes).items():
            self._outcomes.get(outcome, self.attempts.labels(outcome)).inc(count)

    def backlog(self, backlog: Backlog, now: datetime) -> None:
        self.queue_depth.set(backlog.pending)
        oldest = backlog.oldest_pending_at
        self.oldest_pending.set(max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
        self.held.set(backlog.held)
        self.dead.set(backlog.dead)

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))
