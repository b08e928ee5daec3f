"""Metrics ports: served from a thread, and never worth an outage when the port is taken."""

from __future__ import annotations

import logging
import socket

import httpx
import pytest

from autostamp.embedded import free_port
from autostamp.wiring import serve_metrics
from streams.metrics import WorkerMetrics


def test_metrics_are_served_on_the_port_asked_for() -> None:
    metrics = WorkerMetrics()
    port = serve_metrics(metrics.registry, "127.0.0.1", free_port(), "worker")
    assert port is not None
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'autostamp_worker_transactions_total{outcome="applied"} 0.0' in text


def test_a_taken_port_leaves_the_process_running_without_metrics(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with caplog.at_level(logging.WARNING):
            assert serve_metrics(WorkerMetrics().registry, "127.0.0.1", port, "worker") is None
    assert "worker metrics not served" in caplog.text


def test_port_zero_serves_nothing() -> None:
    assert serve_metrics(WorkerMetrics().registry, "127.0.0.1", 0, "worker") is None
