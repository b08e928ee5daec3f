"""The Grafana dashboard and the operations guide name only metrics that some process serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from autostamp.settings import Settings
from autostamp.supervisor import metrics_urls
from publisher_api.metrics import ApiMetrics
from streams.metrics import WorkerMetrics
from webhooks.metrics import DispatcherMetrics

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"\bautostamp_[a-z_]+")
SUFFIXES = ("", "_total", "_bucket", "_count", "_sum")


def served() -> set[str]:
    """Every sample name the worker, the dispatcher and the API can serve."""
    registries: list[CollectorRegistry] = [
        WorkerMetrics().registry,
        DispatcherMetrics().registry,
        ApiMetrics().registry,
    ]
    return {
        family.name + suffix
        for registry in registries
        for family in registry.collect()
        for suffix in SUFFIXES
    }


def test_every_metric_of_the_dashboard_is_served() -> None:
    dashboard = json.loads((ROOT / "docs/grafana/autostamp.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    named = {name for expression in expressions for name in NAME.findall(expression)}
    assert named, "the dashboard queries nothing"
    assert named <= served(), named - served()


def test_every_metric_the_guide_lists_is_served_and_every_served_one_is_listed() -> None:
    guide = (ROOT / "docs/operations.md").read_text()
    section = guide.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    listed = set(NAME.findall(section))
    families = {name.removesuffix("_total") for name in listed}
    assert listed <= served(), listed - served()
    for registry in (WorkerMetrics().registry, DispatcherMetrics().registry):
        for family in registry.collect():
            assert family.name in families, f"{family.name} is not in docs/operations.md"


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        (
            {},
            [
                ("api", "http://127.0.0.1:8000/metrics"),
                ("worker", "http://127.0.0.1:9101/metrics"),
                ("dispatcher", "http://127.0.0.1:9102/metrics"),
            ],
        ),
        (
            {"AUTOSTAMP_METRICS_WORKER_PORT": "0", "AUTOSTAMP_METRICS_HOST": "10.0.0.2"},
            [
                ("api", "http://127.0.0.1:8000/metrics"),
                ("dispatcher", "http://10.0.0.2:9102/metrics"),
            ],
        ),
    ],
)
def test_up_lists_where_each_process_serves_its_metrics(
    monkeypatch: pytest.MonkeyPatch,
    environment: dict[str, str],
    expected: list[tuple[str, str]],
) -> None:
    for name in ("AUTOSTAMP_METRICS_WORKER_PORT", "AUTOSTAMP_METRICS_HOST", "AUTOSTAMP_API_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert metrics_urls(Settings()) == expected
