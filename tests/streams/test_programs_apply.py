"""`autostamp programs apply` as users run it: a file that changes a program must move it to a
newer version than the ledger holds, or say `--bump`; nothing else is published."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import Engine

from autostamp.settings import TopicSettings
from rules import ProgramDefinition, ProgramStatus
from streams.kafka import KafkaPublisher
from tests.streams.conftest import Ledger
from tests.streams.factories import program, save_programs, signed
from tests.streams.programs_judged import definitions_judged, held, refusals, until_judged
from tests.streams.worker import WorkerProcess, wait_for, worker_environment

pytestmark = pytest.mark.kafka

ACTIVE = program("lp_coffee")


def at(version: int, status: ProgramStatus = ProgramStatus.ACTIVE) -> ProgramDefinition:
    return ACTIVE.model_copy(update={"version": version, "status": status})


def apply(
    env: dict[str, str], folder: Path, definition: ProgramDefinition, *options: str
) -> subprocess.CompletedProcess[str]:
    path = folder / f"{definition.id}.json"
    path.write_text(definition.model_dump_json())
    return subprocess.run(
        [sys.executable, "-m", "autostamp", "programs", "apply", str(path), *options],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def published(bootstrap: str, topic: str) -> int:
    """Messages on the topic's one partition: none were ever published when it is 0."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        return int(high)
    finally:
        consumer.close()


@pytest.mark.parametrize("file_version", [2, 1])
def test_a_file_changing_a_program_at_or_below_the_version_held_is_refused_naming_it(
    engine: Engine,
    database_url: str,
    kafka_bootstrap: str,
    topics: TopicSettings,
    tmp_path: Path,
    file_version: int,
) -> None:
    save_programs(engine, at(2))
    env = worker_environment(database_url, kafka_bootstrap, topics)

    refused = apply(env, tmp_path, at(file_version, ProgramStatus.PAUSED))

    assert refused.returncode == 1, refused.stdout
    assert "lp_coffee" in refused.stderr and "the ledger holds version 2" in refused.stderr
    assert "raise `version` to 3" in refused.stderr and "--bump" in refused.stderr
    assert published(kafka_bootstrap, topics.programs) == 0


def test_bump_publishes_a_change_as_the_next_version_and_the_same_file_again_changes_nothing(
    engine: Engine,
    ledger: Ledger,
    kafka_bootstrap: str,
    topics: TopicSettings,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    save_programs(engine, at(2))
    paused = at(1, ProgramStatus.PAUSED)

    bumped = apply(worker.env, tmp_path, paused, "--bump")
    assert bumped.returncode == 0, bumped.stderr
    assert "published lp_coffee version 3" in bumped.stdout
    wait_for(lambda: held(ledger, "lp_coffee") == ("paused", 3), 60, "the pause", worker.log)

    # What the ledger holds already, as a key rotation applies it: at the ledger's version.
    again = apply(worker.env, tmp_path, paused)
    assert again.returncode == 0, again.stderr
    assert "published lp_coffee version 3" in again.stdout
    KafkaPublisher({"bootstrap.servers": kafka_bootstrap}).publish(
        signed(topics.programs, program("lp_after"))
    )
    until_judged(ledger, "lp_after", worker)
    assert held(ledger, "lp_coffee") == ("paused", 3)
    assert refusals(ledger) == []
    wait_for(lambda: definitions_judged(worker, "unchanged") == 1, 30, "counted", worker.log)
