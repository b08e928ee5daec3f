"""`autostamp demo` on a running stack: a real worker and API on the test database and broker.

The demo runs once for the module, as a user runs it, and the tests read what it left in the
ledger. The last test runs it a second time, so it stays last.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine

from autostamp.demo_programs import demo_shops
from autostamp.embedded import free_port, wait_for_port
from autostamp.settings import TopicSettings
from autostamp.topics import ensure_topics
from ledger import migrate
from ledger.console_sessions import redeem_ticket
from ledger.database import transaction
from ledger.errors import AuthError
from ledger.reconcile import reconcile
from tests.conftest import scratch_database
from tests.streams.worker import GroupProgress, WorkerProcess, wait_for, worker_environment
from tests.support.topics import topic_names
from tests.webhooks.support import TEST_KEY

pytestmark = pytest.mark.slow

DEMO_PROGRAMS = [shop.program.id for shop in demo_shops()]
FEED = ["--rate", "30", "--duration", "8", "--members", "3", "--seed", "7"]
SENT = re.compile(r"sent (\d+): (\d+) purchases, (\d+) near misses, (\d+) refunds, (\d+) malformed")
LINK = re.compile(r"console: http://127\.0\.0\.1:(\d+)/console/ticket/(act_[\w-]+)")


@dataclass
class Stack:
    """A worker and an API process on a database and topics of this module only."""

    database_url: str
    env: dict[str, str]
    port: int
    worker: WorkerProcess
    topics: TopicSettings

    def demo(self, *options: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "autostamp", "demo", *options]
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=120)

    def rows(self, sql: str, **params: Any) -> list[Any]:
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(text(sql), params))
        finally:
            engine.dispose()


@dataclass(frozen=True)
class Sent:
    """What the demo's summary says it sent."""

    messages: int
    purchases: int
    near_misses: int
    refunds: int
    malformed: int

    @classmethod
    def of(cls, output: str) -> Sent:
        line = next(line for line in output.splitlines() if line.startswith("fed for"))
        found = SENT.search(line)
        assert found is not None, output
        return cls(*(int(n) for n in found.groups()))


def _api(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "autostamp", "api"], env=env, stdout=output, stderr=output
        )


@pytest.fixture(scope="module")
def stack(
    postgres_server_url: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("demo")
    topics = topic_names()
    ensure_topics({"bootstrap.servers": kafka_bootstrap}, topics)
    with scratch_database(postgres_server_url) as database_url:
        engine = create_engine(database_url)
        migrate.upgrade(engine)
        engine.dispose()
        port = free_port()
        env = worker_environment(database_url, kafka_bootstrap, topics) | {
            "AUTOSTAMP_SECRET_KEY": TEST_KEY,
            "AUTOSTAMP_API_HOST": "127.0.0.1",
            "AUTOSTAMP_API_PORT": str(port),
            "AUTOSTAMP_API_PROCESSES": "1",
        }
        worker = WorkerProcess(env, logs / "worker.log")
        worker.start()
        api = _api(env, logs / "api.log")
        try:
            wait_for_port("127.0.0.1", port, 60.0, "API")
            yield Stack(database_url, env, port, worker, topics)
        finally:
            api.terminate()
            api.wait(30)
            worker.stop()


@pytest.fixture(scope="module")
def first_run(stack: Stack, kafka_bootstrap: str) -> subprocess.CompletedProcess[str]:
    """The demo's run, once the worker has applied every message it sent."""
    started = datetime.now(UTC)
    done = stack.demo(*FEED)
    assert done.returncode == 0, done.stdout + done.stderr + stack.worker.log()
    assert (datetime.now(UTC) - started).total_seconds() < 60
    progress = GroupProgress(kafka_bootstrap, stack.worker.group, stack.topics.transactions)
    try:
        progress.wait_until_committed(Sent.of(done.stdout).messages, 30, stack.worker.log)
    finally:
        progress.close()
    return done


def test_the_feed_stamps_rewards_voids_and_dead_letters_and_the_ledger_reconciles(
    stack: Stack, first_run: subprocess.CompletedProcess[str]
) -> None:
    sent = Sent.of(first_run.stdout)
    stamps = stack.rows(
        "SELECT c.program_id, count(*) AS n FROM stamps s "
        "JOIN stamp_collections c ON c.id = s.collection_id GROUP BY c.program_id"
    )
    rewards = stack.rows(
        "SELECT c.program_id, count(*) AS n FROM rewards r "
        "JOIN stamp_collections c ON c.id = r.collection_id GROUP BY c.program_id"
    )
    voided = stack.rows("SELECT void_transaction_id FROM stamps WHERE status = 'voided'")
    undos = stack.rows("SELECT id FROM undos")
    dead = stack.rows("SELECT reason FROM dead_letters")

    assert sent.purchases > 30 and sent.near_misses > 0 and sent.refunds > 0 and sent.malformed > 0
    # Every member is enrolled in every program, so each purchase stamps one collection.
    assert sum(row.n for row in stamps) == sent.purchases
    assert {row.program_id for row in rewards} == set(DEMO_PROGRAMS)
    assert len(undos) == sent.refunds
    assert 0 < len(voided) <= sent.refunds
    assert {row.void_transaction_id for row in voided} <= {row.id for row in undos}
    assert len(dead) == sent.malformed
    reasons = {row.reason.split(":")[0] for row in dead}
    assert reasons <= {"not valid JSON", "merchant", "amount"} and len(reasons) == min(
        3, sent.malformed
    )
    assert asyncio.run(_reconcile(stack.database_url)) == []


async def _reconcile(database_url: str) -> list[Any]:
    engine = create_async_engine(database_url)
    try:
        async with transaction(engine) as conn:
            return (await reconcile(conn)).differences
    finally:
        await engine.dispose()


def test_members_are_enrolled_through_the_api_with_the_demos_admin_key_which_expires(
    stack: Stack, first_run: subprocess.CompletedProcess[str]
) -> None:
    collections = stack.rows("SELECT program_id, member_id FROM stamp_collections")
    [key] = stack.rows(
        "SELECT id, scope, last_used_at, expires_at, expires_at - created_at AS lifetime"
        " FROM api_keys"
        " WHERE name = 'autostamp demo'"
    )

    assert sorted((c.member_id, c.program_id) for c in collections) == sorted(
        (f"demo_member_00{n}", program) for n in (1, 2, 3) for program in DEMO_PROGRAMS
    )
    assert key.scope == "admin" and key.last_used_at is not None
    assert timedelta(hours=23, minutes=59) < key.lifetime <= timedelta(hours=24)
    ends = key.expires_at.astimezone(UTC)
    assert (
        f"the key, and its console sessions, end at {ends:%Y-%m-%d %H:%M} UTC" in first_run.stdout
    )
    assert "9 new, 0 enrolled already" in first_run.stdout
    assert re.search(r"\[ {3}5s\] sent \d+: .* \| ledger: \d+ stamps", first_run.stdout)


def test_the_printed_sign_in_link_signs_in_once(
    stack: Stack, first_run: subprocess.CompletedProcess[str]
) -> None:
    link = LINK.search(first_run.stdout)
    assert link is not None, first_run.stdout
    assert int(link.group(1)) == stack.port

    first, second = asyncio.run(_redeem_twice(stack.database_url, link.group(2)))

    assert isinstance(first, str) and first.startswith("acs_")
    assert isinstance(second, AuthError)


async def _redeem_twice(database_url: str, ticket: str) -> list[str | AuthError]:
    engine = create_async_engine(database_url)
    answers: list[str | AuthError] = []
    try:
        for _ in range(2):
            try:
                async with transaction(engine) as conn:
                    answers.append(await redeem_ticket(conn, ticket, datetime.now(UTC)))
            except AuthError as exc:
                answers.append(exc)
    finally:
        await engine.dispose()
    return answers


def test_a_second_run_finds_its_members_enrolled_and_stamps_them_again(
    stack: Stack, first_run: subprocess.CompletedProcess[str]
) -> None:
    before = stack.rows("SELECT count(*) AS n FROM stamps")[0].n

    again = stack.demo("--rate", "30", "--duration", "2", "--members", "3", "--seed", "7")

    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 new, 9 enrolled already" in again.stdout
    assert len(stack.rows("SELECT id FROM stamp_collections")) == 9
    # The same seed, a new run: new transaction ids, so new stamps rather than redeliveries.
    wait_for(
        lambda: stack.rows("SELECT count(*) AS n FROM stamps")[0].n > before,
        20,
        "stamps of the second run",
        stack.worker.log,
    )
