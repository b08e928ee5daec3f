"""PostgreSQL failing under a consuming worker: restarted (K10), a COMMIT cut off (K11)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.engine import make_url

from autostamp.embedded import EmbeddedPostgres
from autostamp.settings import TopicSettings
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
from tests.faults.workload import (
    PROCESSED,
    Feed,
    Workload,
    assert_exactly_once,
    produce,
    subscribe_to_everything,
)
from tests.streams.conftest import Ledger
from tests.streams.worker import WorkerProcess
from tests.support.postgres_wire import CommitCutter

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

EX_TEMPFAIL = 75


def reaches(ledger: Ledger, processed: int) -> Callable[[], bool]:
    return lambda: ledger.scalar(PROCESSED) == processed


def retries(worker: WorkerProcess) -> int:
    """Batches the worker tried again after an infrastructure failure."""
    return whole_log(worker).count("stamping failed")


def test_postgres_restarted_mid_stream_loses_and_doubles_nothing_and_the_worker_rides_it_out(
    private_postgres: EmbeddedPostgres,
    kafka_bootstrap: str,
    topics: TopicSettings,
    publisher: KafkaPublisher,
    workers: Workers,
) -> None:
    url = private_postgres.url()
    ledger, workload = Ledger(nullpool_engine(url)), Workload()
    workload.seed(ledger.engine)
    subscribe_to_everything(ledger.engine)  # each reward's event must survive the restart too
    # The default retries (about 20 s in all) outlast a restart.
    worker = workers.start(fault_environment(url, kafka_bootstrap, topics))
    with Feed(publisher, topics.transactions, workload):
        workers.wait_for(lambda: ledger.scalar(PROCESSED) >= 200, 60, "stamping to start")
        private_postgres.stop()
        workers.wait_for(lambda: retries(worker) >= 3, 30, "the worker to retry meanwhile")
        private_postgres.start()
        after = ledger.scalar(PROCESSED) + 200
        workers.wait_for(lambda: ledger.scalar(PROCESSED) >= after, 60, "stamping again")

    produced = len(workload.purchases)
    workers.wait_for(lambda: ledger.scalar(PROCESSED) == produced, 60, "every purchase")
    assert running(worker), worker.log()
    assert_exactly_once(ledger, url, workload)


def test_postgres_down_longer_than_the_retries_stops_the_worker_with_75_and_a_restart_finishes(
    private_postgres: EmbeddedPostgres,
    kafka_bootstrap: str,
    topics: TopicSettings,
    publisher: KafkaPublisher,
    workers: Workers,
) -> None:
    url = private_postgres.url()
    ledger, workload = Ledger(nullpool_engine(url)), Workload()
    workload.seed(ledger.engine)
    worker = workers.start(fault_environment(url, kafka_bootstrap, topics, **QUICK_RETRIES))
    with Feed(publisher, topics.transactions, workload):
        workers.wait_for(lambda: ledger.scalar(PROCESSED) >= 200, 60, "stamping to start")
        private_postgres.stop()
        code = exit_code(worker, 30)
        private_postgres.start()
        worker.start()  # as a supervisor would, in the same consumer group

    assert code == EX_TEMPFAIL, worker.log()
    assert "storage failure after retries" in whole_log(worker)
    produced = len(workload.purchases)
    workers.wait_for(lambda: ledger.scalar(PROCESSED) == produced, 60, "every purchase")
    assert running(worker), worker.log()
    assert_exactly_once(ledger, url, workload)


def test_a_commit_cut_off_before_its_answer_is_retried_without_doubling_anything(
    database_url: str,
    ledger: Ledger,
    kafka_bootstrap: str,
    topics: TopicSettings,
    publisher: KafkaPublisher,
    workers: Workers,
) -> None:
    workload = Workload()
    workload.seed(ledger.engine)
    subscribe_to_everything(ledger.engine)  # each reward's event must survive the cut too
    server = make_url(database_url)
    cutter = CommitCutter((server.host or "127.0.0.1", server.port or 5432)).start()
    # In clear: the proxy reads the protocol.
    proxied = server.set(port=cutter.port, query={"sslmode": "disable"})
    env = fault_environment(proxied.render_as_string(False), kafka_bootstrap, topics)
    try:
        worker = workers.start(env)
        produce(publisher, topics.transactions, workload.buy(10))
        workers.wait_for(lambda: ledger.scalar(PROCESSED) == 10, 60, "the first purchases")

        cutter.arm(times=3)  # the next three commits that stamp
        for _ in range(5):
            produce(publisher, topics.transactions, workload.buy(300))
            workers.wait_for(reaches(ledger, len(workload.purchases)), 60, "a wave of purchases")
    finally:
        cutter.stop()

    # The server committed each of them; the worker could not know, and tried again.
    assert cutter.answers == ["COMMIT"] * 3
    assert whole_log(worker).count("database unavailable") >= 3
    assert running(worker), worker.log()
    assert_exactly_once(ledger, database_url, workload)
