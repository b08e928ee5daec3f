"""A database that refuses every write until an operator acts: never a dead letter, exit 78.

A read-only server (a standby, or after a failover) and a schema behind the code (a deploy
before its migration) fail every event alike. Dead-lettering them would empty the stream
into the dead letters; the worker stops instead, acknowledging nothing, and says what to fix.
"""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy.engine import make_url

from autostamp.settings import TopicSettings
from autostamp.wiring import libpq_url
from ledger import migrate
from streams.kafka import KafkaPublisher
from tests.faults.processes import (
    QUICK_RETRIES,
    Workers,
    exit_code,
    fault_environment,
    nullpool_engine,
    running,
    whole_log,
)
from tests.faults.workload import PROCESSED, Workload, assert_exactly_once, produce
from tests.streams.conftest import Ledger

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

EX_CONFIG = 78


def set_read_only(database_url: str, read_only: bool) -> None:
    """What a failover to a standby looks like to new sessions of this database."""
    url = make_url(database_url)
    # From another database: the setting applies to new sessions of `url`'s.
    admin = libpq_url(url.set(database="postgres").render_as_string(False))
    value = "on" if read_only else "off"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{url.database}" SET default_transaction_read_only = {value}')


def test_a_read_only_database_stops_the_worker_with_78_and_dead_letters_nothing(
    database_url: str,
    ledger: Ledger,
    kafka_bootstrap: str,
    topics: TopicSettings,
    publisher: KafkaPublisher,
    workers: Workers,
) -> None:
    workload = Workload()
    workload.seed(ledger.engine)
    set_read_only(database_url, True)
    env = fault_environment(database_url, kafka_bootstrap, topics, **QUICK_RETRIES)
    worker = workers.start(env)
    produce(publisher, topics.transactions, workload.buy(50))

    assert exit_code(worker, 60) == EX_CONFIG, worker.log()
    stopped = [line for line in whole_log(worker).splitlines() if "To fix" in line]
    assert stopped and "read-only" in stopped[-1], worker.log()
    assert ledger.scalar("SELECT count(*) FROM dead_letters") == 0
    assert ledger.scalar("SELECT count(*) FROM stamps") == 0

    set_read_only(database_url, False)
    worker.start()  # the operator pointed it at the primary; same consumer group
    workers.wait_for(lambda: ledger.scalar(PROCESSED) == 50, 60, "every purchase")
    assert running(worker), worker.log()
    assert_exactly_once(ledger, database_url, workload)


def test_a_deploy_before_its_migration_stops_the_worker_with_78_until_db_upgrade(
    empty_database: str,
    kafka_bootstrap: str,
    topics: TopicSettings,
    publisher: KafkaPublisher,
    workers: Workers,
) -> None:
    engine = nullpool_engine(empty_database)
    migrate.upgrade(engine, "0001")
    ledger, workload = Ledger(engine), Workload()
    workload.seed(engine)  # the program and collections, as the old version wrote them
    env = fault_environment(empty_database, kafka_bootstrap, topics, **QUICK_RETRIES)
    worker = workers.start(env)
    produce(publisher, topics.transactions, workload.buy(50))

    assert exit_code(worker, 60) == EX_CONFIG, worker.log()
    stopped = [line for line in whole_log(worker).splitlines() if "To fix" in line]
    assert stopped and "run `autostamp db upgrade`" in stopped[-1], worker.log()
    assert ledger.scalar("SELECT count(*) FROM dead_letters") == 0
    assert ledger.scalar("SELECT count(*) FROM stamps") == 0

    migrate.upgrade(engine)  # `autostamp db upgrade`
    worker.start()
    workers.wait_for(lambda: ledger.scalar(PROCESSED) == 50, 60, "every purchase")
    assert running(worker), worker.log()
    assert_exactly_once(ledger, empty_database, workload)
