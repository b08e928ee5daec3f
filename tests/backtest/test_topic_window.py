"""The backtest reads a window of the transactions topic by message time, joining no group."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from confluent_kafka import Producer
from typer.testing import CliRunner

from autostamp.cli import app
from autostamp.settings import TopicSettings
from ledger.backtest import backtest
from ledger.sieve import select
from rules import load_program
from streams.feeds import read_window
from tests.backtest.test_report import COFFEE, MONDAY, coffee

pytestmark = pytest.mark.kafka


def _produce(bootstrap: str, topic: str, lines: list[tuple[bytes, int]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for value, millis in lines:
        producer.produce(topic, value, key=b"m1", timestamp=millis)
        assert producer.flush(30) == 0


def test_a_topic_window_gives_the_transactions_stamped_inside_it(
    kafka_bootstrap: str, topics: TopicSettings
) -> None:
    base = int(time.time() * 1000) - 3_600_000
    days = [coffee(n, MONDAY + timedelta(days=n)) for n in range(7)]
    batch = b"[" + b",".join(orjson.dumps(x) for x in days[4:6]) + b"]"
    lines = [(orjson.dumps(x), base + n * 60_000) for n, x in enumerate(days[:4])]
    lines += [(batch, base + 4 * 60_000), (orjson.dumps(days[6]), base + 10 * 60_000)]
    _produce(kafka_bootstrap, topics.transactions, lines)
    start = datetime.fromtimestamp((base + 60_000) / 1000, UTC)
    end = datetime.fromtimestamp((base + 5 * 60_000) / 1000, UTC)
    config = {"bootstrap.servers": kafka_bootstrap}
    read = list(read_window(config, topics.transactions, start, end))
    assert len(read) == 5  # minutes 1, 2, 3, and the batch of two at minute 4
    program = load_program(COFFEE)
    report = backtest(program, select(read, program))
    assert (report.total.stamps, report.total.rewards) == (5, 1)


def test_the_command_backtests_a_topic_window(
    kafka_bootstrap: str, topics: TopicSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = int(time.time() * 1000) - 3_600_000
    days = [coffee(n, MONDAY + timedelta(days=n)) for n in range(5)]
    _produce(kafka_bootstrap, topics.transactions, [(orjson.dumps(x), base) for x in days])
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    window = [
        f"{datetime.fromtimestamp(s / 1000, UTC):%Y-%m-%dT%H:%M:%S%z}" for s in (base, base + 1000)
    ]
    command = ["programs", "backtest", str(COFFEE), "--topic", topics.transactions, "--json"]
    shown = CliRunner().invoke(app, [*command, "--from", window[0], "--to", window[1]])
    assert shown.exit_code == 0, shown.output
    assert orjson.loads(shown.output)["total"]["rewards"] == 1
