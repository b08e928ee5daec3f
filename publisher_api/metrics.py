"""Prometheus request counts and latencies by route template and status, per application."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import Scope

UNMATCHED = "unmatched"
_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ApiMetrics:
    """Metrics of one application, in a registry of its own so tests can build many apps."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("method", "route", "status")
        self.requests = Counter(
            "autostamp_api_requests",
            "HTTP requests answered, by route template and status.",
            labels,
            registry=self.registry,
        )
        self.latency = Histogram(
            "autostamp_api_request_duration_seconds",
            "Time to answer an HTTP request, by route template and status.",
            labels,
            buckets=_BUCKETS,
            registry=self.registry,
        )

        # A label set's children, looked up once: `labels()` costs more than the update.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        children = self._children.get((method, route, status))
        if children is None:
            labels = (method, route, str(status))
            children = self.requests.labels(*labels), self.latency.labels(*labels)
            self._children[(method, route, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))


def route_label(scope: Scope) -> str:
    """The matched route's template, never the raw path: unknown paths share one label."""
    template = getattr(scope.get("route"), "path", None)
    return template if isinstance(template, str) else UNMATCHED
