"""`autostamp dead-letters`: what the worker refused, with why, and a way back in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from sqlalchemy import Engine
from typer.testing import CliRunner

from autostamp.dead_letters_cli import app
from autostamp.settings import TopicSettings
from tests.streams.conftest import Ledger
from tests.streams.factories import messages, program, tx
from tests.streams.worker import wait_for

runner = CliRunner()
MakeService = Callable[..., Any]


@pytest.fixture
async def refused(
    engine: Engine,
    make_service: MakeService,
    database_url: str,
    kafka_bootstrap: str,
    topics: TopicSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> Engine:
    """Two dead letters: a message that is not JSON, and an item of a bank batch."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("AUTOSTAMP_TOPIC_TRANSACTIONS", topics.transactions)
    service = await make_service(program())
    await service.stamp(messages(b"{not json", [tx("b0"), {"id": "broken"}]))
    return engine


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_list_shows_each_refusal_with_its_place_and_reason(refused: Engine) -> None:
    lines = invoke("list").splitlines()
    assert len(lines) == 3
    assert "not valid JSON" in lines[2] and "transactions[0]@" in lines[2]
    assert "item 1:" in lines[1] and "#1" in lines[1]


def test_show_gives_the_whole_message_and_its_hash(refused: Engine, tmp_path: Path) -> None:
    first = invoke("list").splitlines()[-1].split()[0]
    shown = invoke("show", first)
    assert "bytes:    9 (sha256 " in shown and "{not json" in shown
    invoke("show", first, "--output", str(tmp_path / "message"))
    assert (tmp_path / "message").read_bytes() == b"{not json"


def test_replay_puts_the_original_back_on_the_topic_once(
    refused: Engine, ledger: Ledger, kafka_bootstrap: str, topics: TopicSettings
) -> None:
    first = invoke("list").splitlines()[-1].split()[0]
    assert "replayed 1 dead letters" in invoke("replay", first)
    assert "already replayed" in invoke("replay", first, code=1)
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "replay-reader"})
    consumer.assign([TopicPartition(topics.transactions, p, OFFSET_BEGINNING) for p in (0, 1)])
    found: list[bytes] = []

    def polled() -> bool:
        record = consumer.poll(0.5)
        if record is not None and record.error() is None:
            found.append(record.value())
        return bool(found)

    try:
        wait_for(polled, 30, "the replayed message")
    finally:
        consumer.close()
    assert found == [b"{not json"]
    assert ledger.scalar("SELECT count(*) FROM dead_letters WHERE replayed_at IS NOT NULL") == 1
    assert "replayed" in invoke("list", "--replayed")
