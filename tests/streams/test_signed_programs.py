"""The worker applies only program definitions signed with a key it holds: real broker, real
database, a worker process, and `autostamp programs apply` as users run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from autostamp.settings import TopicSettings
from rules import ProgramDefinition, ProgramStatus
from rules.samples import sample_program
from streams.kafka import KafkaPublisher, ProducerRecord
from tests.streams.conftest import Ledger
from tests.streams.factories import program, save_programs, signed
from tests.streams.programs_judged import (
    definitions_judged,
    held,
    programs,
    refusals,
    until_judged,
)
from tests.streams.worker import PROGRAMS_KEY, WorkerProcess, wait_for, worker_environment

pytestmark = pytest.mark.kafka

# What the finding feared: a fixed reward for any purchase at all, since no rule limits it.
FREE_MONEY = ProgramDefinition.model_validate(
    sample_program(
        "lp_free", threshold=1, reward={"type": "fixed-reward", "amount": 50_000, "currency": "GBP"}
    )
)
OTHER_KEY = "a-key-the-worker-was-never-given-0123456789"
NEW_KEY = "the-programs-signing-key-after-rotation-0123456789"


@pytest.fixture
def publisher(kafka_bootstrap: str) -> KafkaPublisher:
    return KafkaPublisher({"bootstrap.servers": kafka_bootstrap})


def test_an_unsigned_fixed_reward_program_is_not_applied_and_is_refused_as_unsigned(
    ledger: Ledger, publisher: KafkaPublisher, topics: TopicSettings, worker: WorkerProcess
) -> None:
    unsigned = ProducerRecord(topics.programs, FREE_MONEY.model_dump_json().encode(), b"lp_free")
    publisher.publish([unsigned, *signed(topics.programs, program("lp_good"))])
    until_judged(ledger, "lp_good", worker, refused=1)
    assert programs(ledger) == ["lp_good"]
    [(key, reason)] = refusals(ledger)
    assert key == b"lp_free"
    assert reason == "unsigned definition: no autostamp-signature header"
    assert worker.running()


def test_a_program_signed_with_a_wrong_key_or_replayed_under_another_id_is_refused(
    ledger: Ledger, publisher: KafkaPublisher, topics: TopicSettings, worker: WorkerProcess
) -> None:
    [theirs] = signed(topics.programs, FREE_MONEY, key=OTHER_KEY)
    [ours] = signed(topics.programs, program("lp_coffee"))
    replayed = ProducerRecord(topics.programs, ours.value, b"lp_free", ours.headers)
    publisher.publish([theirs, replayed, *signed(topics.programs, program("lp_good"))])
    until_judged(ledger, "lp_good", worker, refused=2)
    assert programs(ledger) == ["lp_good"]
    found = refusals(ledger)
    assert [key for key, _ in found] == [b"lp_free", b"lp_free"]
    assert all(reason.startswith("wrong signature: ") for _, reason in found)
    assert not any(k in reason for k in (PROGRAMS_KEY, OTHER_KEY) for _, reason in found)
    assert worker.running()


def test_a_program_paused_by_a_new_version_stays_paused_when_its_earlier_definition_is_replayed(
    ledger: Ledger, publisher: KafkaPublisher, topics: TopicSettings, worker: WorkerProcess
) -> None:
    earlier = signed(topics.programs, program("lp_coffee"))
    paused = program("lp_coffee").model_copy(update={"version": 2, "status": ProgramStatus.PAUSED})
    publisher.publish([*earlier, *signed(topics.programs, paused)])
    wait_for(lambda: held(ledger, "lp_coffee") == ("paused", 2), 60, "the pause", worker.log)

    # Whoever can write to the topic can send the earlier message again, byte for byte.
    publisher.publish([*earlier, *signed(topics.programs, program("lp_after"))])
    until_judged(ledger, "lp_after", worker)

    assert held(ledger, "lp_coffee") == ("paused", 2)
    assert refusals(ledger) == []  # a compacted topic read again replays older versions too
    wait_for(lambda: definitions_judged(worker, "superseded") == 1, 30, "counted", worker.log)


def test_the_version_held_sent_again_with_other_content_is_dead_lettered_and_changes_nothing(
    engine: Engine,
    ledger: Ledger,
    publisher: KafkaPublisher,
    topics: TopicSettings,
    worker: WorkerProcess,
) -> None:
    # Paused the old way, at the version it was published with: its signed active definition
    # is still on the topic, for anyone to send again.
    active = program("lp_coffee")
    save_programs(engine, active.model_copy(update={"status": ProgramStatus.PAUSED}))
    publisher.publish([*signed(topics.programs, active, program("lp_after"))])
    until_judged(ledger, "lp_after", worker, refused=1)

    assert held(ledger, "lp_coffee") == ("paused", 1)
    [(key, reason)] = refusals(ledger)
    assert key == b"lp_coffee"
    assert "version 1" in reason and "other content" in reason
    assert worker.running()


def test_programs_apply_publishes_a_definition_the_worker_applies(
    ledger: Ledger, topics: TopicSettings, worker: WorkerProcess, tmp_path: Path
) -> None:
    path = tmp_path / "bakery.json"
    path.write_text(program("lp_bakery").model_dump_json())
    applied = subprocess.run(
        [sys.executable, "-m", "autostamp", "programs", "apply", str(path)],
        env=worker.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert applied.returncode == 0, applied.stderr
    until_judged(ledger, "lp_bakery", worker)
    assert refusals(ledger) == []


def test_after_a_rotation_the_old_key_still_applies_and_a_key_no_longer_listed_is_refused(
    engine: Engine,
    ledger: Ledger,
    publisher: KafkaPublisher,
    topics: TopicSettings,
    database_url: str,
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    env = worker_environment(database_url, kafka_bootstrap, topics)
    rotated = WorkerProcess(
        env | {"AUTOSTAMP_PROGRAMS_SIGNING_KEY": f"{NEW_KEY},{PROGRAMS_KEY}"},
        tmp_path / "worker.log",
    )
    rotated.start()
    try:
        publisher.publish(
            [
                *signed(topics.programs, program("lp_old"), key=PROGRAMS_KEY),
                *signed(topics.programs, FREE_MONEY, key=OTHER_KEY),
                *signed(topics.programs, program("lp_new"), key=NEW_KEY),
            ]
        )
        until_judged(ledger, "lp_new", rotated, refused=1)
        assert programs(ledger) == ["lp_new", "lp_old"]
        [(key, reason)] = refusals(ledger)
        assert key == b"lp_free"
        assert "is not among the programs signing keys" in reason
    finally:
        rotated.stop()


@pytest.mark.parametrize("command", [["worker"], ["programs", "apply", "missing.yaml"]])
def test_a_configured_broker_without_a_programs_key_refuses_to_start(
    command: list[str], tmp_path: Path
) -> None:
    env = worker_environment("postgresql://nobody@127.0.0.1:1/none", "127.0.0.1:1", TopicSettings())
    del env["AUTOSTAMP_PROGRAMS_SIGNING_KEY"]
    refused = subprocess.run(
        [sys.executable, "-m", "autostamp", *command],
        env=env | {"AUTOSTAMP_STATE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 78
    assert "AUTOSTAMP_PROGRAMS_SIGNING_KEY is not set" in refused.stderr
