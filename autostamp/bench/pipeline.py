"""`autostamp bench pipeline`: the whole stream path, side by side with what it is measured against.

On a throwaway database (on DATABASE_URL's server, else an embedded PostgreSQL: never a
configured database's data) and the embedded broker unless one is configured, it seeds
1,000 programs and 100,000 enrolled collections, then measures in one run:

- `bare_per_s`: a faust agent that only consumes and decodes (faust's own ceiling);
- `tx_per_s`: the workers, one transaction per message, half of them stamping;
- `realistic_tx_per_s`: the same with 5% matching a program, as real card feeds do;
- `packed_tx_per_s`: bank batches of 100 transactions per message, half stamping;
- `peer_tx_per_s`: what one would write without autostamp (`autostamp.bench.peer`);
- `latency_p99_ms`: produce to committed stamp, at a steady half of `tx_per_s`;
- CPU microseconds per transaction of each stage (`autostamp.bench.stages`);
- the workers' peak RSS at 100,000 collections and again at 1,000,000.

A worker run is timed from the moment both workers hold their partitions (a worker that joins
late leaves the other alone meanwhile) to the group's commit of the last message, counting
what the group committed in between; the workers commit an offset only once the ledger holds
the effects of what precedes it.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text

from autostamp.bench.database import scratch_database
from autostamp.bench.latency import percentile, steady_latencies
from autostamp.bench.population import (
    Population,
    enroll_more,
    packed_records,
    seed,
    single_records,
    transactions,
)
from autostamp.bench.stages import STAGES, stage_costs
from autostamp.embedded import EmbeddedBroker, free_port
from autostamp.settings import TopicSettings
from autostamp.state_secrets import state_secret
from autostamp.topics import ensure_topics
from autostamp.wiring import PROGRAMS_KEY_FILE, SECRET_KEY_FILE
from streams.consumer import held_partitions
from streams.kafka import KafkaPublisher

PARTITIONS = 4
QUANTILES = (0.5, 0.9, 0.99)
MILLION = 1_000_000


def _environment(
    database_url: str, bootstrap: str, topics: TopicSettings, state_dir: Path
) -> dict[str, str]:
    return os.environ | {
        "AUTOSTAMP_STATE_DIR": str(state_dir),
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "AUTOSTAMP_LOG_LEVEL": "WARNING",
        "AUTOSTAMP_KAFKA_CONSUMER_GROUP": f"bench-{uuid.uuid4().hex[:8]}",
        "AUTOSTAMP_TOPIC_TRANSACTIONS": topics.transactions,
        "AUTOSTAMP_TOPIC_DEAD_LETTER": topics.dead_letter,
        "AUTOSTAMP_TOPIC_PROGRAMS": topics.programs,
        "AUTOSTAMP_TOPIC_PAYOUTS": topics.payouts,
        # The programs are seeded in the database; the workers still refuse to start without
        # a key to verify the programs topic with.
        "AUTOSTAMP_PROGRAMS_SIGNING_KEY": state_secret(state_dir, PROGRAMS_KEY_FILE),
        # The key whose pseudonyms name erased members: a worker needs it as the API does.
        "AUTOSTAMP_SECRET_KEY": state_secret(state_dir, SECRET_KEY_FILE),
        "AUTOSTAMP_KAFKA_SESSION_TIMEOUT_S": "6",
        "AUTOSTAMP_KAFKA_REBALANCE_TIMEOUT_S": "6",
        "AUTOSTAMP_KAFKA_HEARTBEAT_INTERVAL_S": "1",
        "AUTOSTAMP_KAFKA_COMMIT_INTERVAL_S": "0.1",
    }


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _committed(reader: Any, topic: str) -> int:
    """Messages of `topic` the workers' group has committed, over its partitions."""
    from confluent_kafka import TopicPartition

    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    return sum(max(tp.offset, 0) for tp in reader.committed(partitions, timeout=10))


class Workers:
    """Worker processes on one topic, and what their group has committed."""

    def __init__(self, env: dict[str, str], topic: str, count: int) -> None:
        from confluent_kafka import Consumer

        bootstrap, group = env["KAFKA_BOOTSTRAP_SERVERS"], env["AUTOSTAMP_KAFKA_CONSUMER_GROUP"]
        self.topic, self.group, self.bootstrap = topic, group, bootstrap
        self.reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        argv = [sys.executable, "-m", "autostamp", "worker"]
        env = env | {"AUTOSTAMP_LOG_LEVEL": "INFO"}
        self.logs = [Path(env["AUTOSTAMP_STATE_DIR"]) / f"worker-{n}.log" for n in range(count)]
        self.procs = []
        for path in self.logs:
            with path.open("wb") as log:
                self.procs.append(subprocess.Popen(argv, env=env, stdout=log, stderr=log))

    def committed(self) -> int:
        return _committed(self.reader, self.topic)

    def settle(self, timeout_s: float = 60.0) -> None:
        """Wait until every worker holds partitions and together they hold all of them: no
        rebalance left to disturb a measure."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            held = [held_partitions(path.read_text(errors="replace")) for path in self.logs]
            if all(held) and len(set().union(*held)) == PARTITIONS:
                return
            time.sleep(0.1)
        raise TimeoutError(f"the workers' group did not settle within {timeout_s}s")

    def rate(self, messages: int) -> float:
        """Messages per second once every worker holds its partitions, to the last message.

        A worker that joins the group late leaves the first one working alone meanwhile; the
        measure starts when both work, from what the group has committed by then."""
        self.settle()
        done, start = self.committed(), time.perf_counter()
        if done > messages // 2:  # a short run, almost over before the group settled
            return messages / self.seconds_to_finish(messages)
        while self.committed() < messages:
            time.sleep(0.05)
        return (messages - done) / (time.perf_counter() - start)

    def seconds_to_finish(self, messages: int) -> float:
        """From the group's first commit to its commit of all `messages` of the topic.

        Counted against what was produced: the embedded broker's high watermark can lag."""
        while self.committed() == 0:
            time.sleep(0.01)
        first = time.perf_counter()
        while self.committed() < messages:
            time.sleep(0.05)
        return time.perf_counter() - first

    def peak_rss_mb(self) -> float:
        return max(_peak_rss_mb(p.pid) for p in self.procs)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(60)
        self.reader.close()


@contextmanager
def workers(env: dict[str, str], topic: str, count: int) -> Iterator[Workers]:
    running = Workers(env, topic, count)
    try:
        yield running
    finally:
        running.stop()


def _timed_subprocess(module: str, env: dict[str, str], topic: str, n: int, out: Path) -> float:
    """Run a baseline (`bare_consumer`, `peer`) to its n-th message; its rate per second."""
    argv = [sys.executable, "-m", module, topic, str(n), str(out)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode:
        raise RuntimeError(f"{module} exited with {done.returncode}:\n{done.stderr[-4000:]}")
    return n / float(out.read_text())


def _topics(suffix: str) -> TopicSettings:
    return TopicSettings(
        transactions=f"bench-tx-{suffix}",
        dead_letter=f"bench-dlq-{suffix}",
        programs=f"bench-programs-{suffix}",
        payouts=f"bench-payouts-{suffix}",
        partitions=PARTITIONS,
    )


def _broker(stack: ExitStack, tmp: Path) -> str:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap:
        return bootstrap
    broker = EmbeddedBroker(free_port(), tmp / "broker.log")
    broker.start()
    stack.callback(broker.stop)
    return broker.bootstrap_servers


class Bench:
    """One run: its database, broker, population, and a fresh topic for each measure."""

    def __init__(
        self,
        database_url: str,
        bootstrap: str,
        workers: int,
        rng: random.Random,
        state_dir: Path,
    ):
        self.database_url, self.bootstrap, self.workers, self.rng = (
            database_url,
            bootstrap,
            workers,
            rng,
        )
        self.state_dir = state_dir
        self.engine: Engine = create_engine(database_url)
        self.publisher = KafkaPublisher({"bootstrap.servers": bootstrap})
        self.population: Population = seed(self.engine, rng)

    def close(self) -> None:
        self.publisher.close()
        self.engine.dispose()

    def topic(self) -> TopicSettings:
        topics = _topics(uuid.uuid4().hex[:8])
        ensure_topics({"bootstrap.servers": self.bootstrap}, topics)
        return topics

    def feed(self, n: int, matching: float, pack: int = 1) -> tuple[TopicSettings, int]:
        """A new topic with `n` transactions, and how many messages hold them."""
        topics = self.topic()
        bodies = transactions(n, self.population, self.rng, uuid.uuid4().hex[:6], matching)
        if pack > 1:
            records = packed_records(topics.transactions, bodies, pack)
        else:
            records = single_records(topics.transactions, bodies)
        return topics, self.publisher.publish(records)

    def env(self, topics: TopicSettings) -> dict[str, str]:
        return _environment(self.database_url, self.bootstrap, topics, self.state_dir)

    def rate(self, fed: tuple[TopicSettings, int], n: int) -> tuple[float, float]:
        """(transactions per second, peak worker RSS in MB) of the workers on a fed topic."""
        topics, messages = fed
        with workers(self.env(topics), topics.transactions, self.workers) as running:
            per_message = running.rate(messages)
            return per_message * n / messages, running.peak_rss_mb()

    def baseline(self, module: str, topics: TopicSettings, n: int, tmp: Path) -> float:
        out = tmp / f"{module.rsplit('.', 1)[-1]}-{uuid.uuid4().hex[:6]}.txt"
        return _timed_subprocess(module, self.env(topics), topics.transactions, n, out)

    def latency_p99_ms(self, rate: float, seconds: float) -> float:
        topics = self.topic()
        with workers(self.env(topics), topics.transactions, self.workers) as running:
            self.publisher.publish(
                single_records(topics.transactions, transactions(50, self.population, self.rng))
            )
            running.settle()
            while running.committed() < 50:  # the workers are applying
                time.sleep(0.05)
            n = max(100, int(rate * seconds))
            bodies = transactions(n, self.population, self.rng, uuid.uuid4().hex[:6], 0.5)
            stamping = sum(
                1 for b in bodies if not str(b["merchant"]["id"]).startswith("mer_other")
            )
            found = steady_latencies(
                self.database_url, self.bootstrap, topics.transactions, bodies, rate, stamping
            )
        print(
            "latency_ms "
            + " ".join(f"p{int(q * 100)}={1000 * percentile(found, q):.0f}" for q in QUANTILES)
        )
        return 1000 * percentile(found, 0.99)

    def stamps(self) -> tuple[int, int]:
        with self.engine.connect() as conn:
            stamps = conn.execute(text("SELECT count(*) FROM stamps")).scalar_one()
            rewards = conn.execute(text("SELECT count(*) FROM rewards")).scalar_one()
        return stamps, rewards


def run(quick: bool = False, **options: object) -> None:
    n = int(str(options.get("transactions") or (20_000 if quick else 200_000)))
    pack = int(str(options.get("pack") or 100))
    count = int(os.environ.get("AUTOSTAMP_BENCH_WORKERS", "2"))
    with ExitStack() as stack:
        # Entered first, so removed last: after the services that write into it stopped.
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="autostamp-bench-")))
        database_url, where = stack.enter_context(scratch_database())
        bootstrap = _broker(stack, tmp)
        bench = Bench(database_url, bootstrap, count, random.Random(42), tmp)
        stack.callback(bench.close)  # before the broker stops: no reconnect noise
        _measure(bench, n, pack, quick, tmp, where)


def _measure(bench: Bench, n: int, pack: int, quick: bool, tmp: Path, where: str) -> None:
    print(
        f"programs={len(bench.population.programs)} collections={bench.population.collections} "
        f"transactions={n} partitions={PARTITIONS} workers={bench.workers} pack={pack} "
        f"database={where}"
    )
    half = bench.feed(n, 0.5)
    bare = bench.baseline("autostamp.bench.bare_consumer", half[0], n, tmp)
    print(f"bare_per_s={bare:.0f}")
    single, rss = bench.rate(half, n)
    print(f"tx_per_s={single:.0f} worker_rss_mb_100k={rss:.0f}")
    realistic, _ = bench.rate(bench.feed(n, 0.05), n)
    print(f"realistic_tx_per_s={realistic:.0f}")
    packed, _ = bench.rate(bench.feed(n, 0.5, pack), n)
    print(f"packed_tx_per_s={packed:.0f}")
    peer_n = 2_000 if quick else 10_000
    peer = bench.baseline("autostamp.bench.peer", bench.feed(peer_n, 0.5)[0], peer_n, tmp)
    print(f"peer_tx_per_s={peer:.0f}")
    latency = bench.latency_p99_ms(single / 2, 10 if quick else 20)
    print(f"latency_p99_ms={latency:.0f} offered_per_s={single / 2:.0f}")
    sample = min(n, 50_000)
    on = bench.feed(sample, 0.5)[0].transactions
    costs = stage_costs(bench.database_url, bench.bootstrap, on, sample)
    print("cpu_us_per_tx " + " ".join(f"{s}={costs[s]:.1f}" for s in STAGES))
    stamps, rewards = bench.stamps()
    print(f"stamps={stamps} rewards={rewards}")
    more = (MILLION - bench.population.collections) // 5
    enroll_more(bench.engine, bench.rng, bench.population, more // 10 if quick else more)
    _, rss_1m = bench.rate(bench.feed(n, 0.05), n)
    print(f"collections={bench.population.collections} worker_rss_mb_1m={rss_1m:.0f}")
    print(
        f"pipeline: tx_per_s={single:.0f} realistic_tx_per_s={realistic:.0f} "
        f"packed_tx_per_s={packed:.0f} bare_per_s={bare:.0f} peer_tx_per_s={peer:.0f} "
        f"latency_p99_ms={latency:.0f} worker_rss_mb={max(rss, rss_1m):.0f}"
    )
