"""The broker out of reach mid-stream (K14): every connection cut for seconds, then restored.

The embedded broker keeps its log in memory, so it cannot be restarted; instead a proxy that
the broker advertises as its address stands between it and every client, and is cut.
"""

from __future__ import annotations

import time

import pytest

from autostamp.topics import ensure_topics
from streams.kafka import KafkaPublisher
from tests.faults.processes import ProxiedBroker, Workers, fault_environment, running
from tests.faults.workload import PROCESSED, Feed, Workload, assert_exactly_once, produce
from tests.streams.conftest import Ledger
from tests.support.topics import topic_names

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

# Longer than the consumer group's session (6 s in the tests): the group forgets the worker.
CUT_S = 8.0


def test_broker_connections_cut_and_restored_mid_stream_lose_and_double_nothing(
    database_url: str,
    ledger: Ledger,
    proxied_broker: ProxiedBroker,
    workers: Workers,
) -> None:
    bootstrap = proxied_broker.bootstrap_servers
    topics = topic_names(partitions=2)
    ensure_topics({"bootstrap.servers": bootstrap}, topics)
    publisher = KafkaPublisher({"bootstrap.servers": bootstrap})
    workload = Workload()
    workload.seed(ledger.engine)
    worker = workers.start(fault_environment(database_url, bootstrap, topics))
    produce(publisher, topics.transactions, workload.buy(10))
    workers.wait_for(lambda: ledger.scalar(PROCESSED) == 10, 60, "the worker to stamp")

    # The banks' producer goes through the proxy too: it holds what it is given meanwhile.
    with Feed(publisher, topics.transactions, workload):
        workers.wait_for(lambda: ledger.scalar(PROCESSED) >= 500, 60, "stamping to go on")
        proxied_broker.proxy.cut()
        time.sleep(CUT_S)  # the outage itself: nothing to wait for
        cut_off = ledger.scalar(PROCESSED)
        proxied_broker.proxy.restore()
        workers.wait_for(lambda: ledger.scalar(PROCESSED) >= cut_off + 500, 60, "stamping again")

    produced = len(workload.purchases)
    workers.wait_for(lambda: ledger.scalar(PROCESSED) == produced, 60, "every purchase")
    assert running(worker), worker.log()
    assert_exactly_once(ledger, database_url, workload)
