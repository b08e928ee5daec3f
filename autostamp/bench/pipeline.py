"""`autostamp bench pipeline`: end-to-end stamping rate against a bare consume-and-decode.

Seeds 1,000 programs and 100,000 enrolled collections in a throwaway database (on
DATABASE_URL's server, else an embedded PostgreSQL: never in a configured database),
produces N transactions (about half of them qualifying), then in one run measures (1) a
faust agent that only consumes and decodes them and (2) the real workers, from their first
committed offset until the consumer group has committed every message, which it does only
once the ledger holds the message's effects. Both read the same topic; the ratio is the
cost of our work over faust's own.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, text

from autostamp.bench.database import scratch_database
from autostamp.embedded import EmbeddedBroker, free_port
from autostamp.settings import TopicSettings
from autostamp.topics import ensure_topics
from rules.samples import sample_program
from streams.kafka import KafkaPublisher, ProducerRecord

PROGRAMS = 1_000
MEMBERS = 20_000
ENROLLMENTS_PER_MEMBER = 5
MERCHANTS = 3_000
PARTITIONS = 4


def _program(n: int, rng: random.Random) -> dict[str, object]:
    reward = (
        {"type": "refund"}
        if n % 3 == 0
        else {"type": "fixed-reward", "amount": 500, "currency": "GBP"}
    )
    merchants = sorted({f"mer_{rng.randrange(MERCHANTS)}" for _ in range(rng.randint(1, 3))})
    rules = {"merchant_ids": merchants}
    return sample_program(f"lp_{n:05d}", threshold=rng.randint(5, 10), reward=reward, rules=rules)


def seed(engine: Engine, rng: random.Random) -> dict[str, list[str]]:
    """Programs and collections; returns each member's qualifying merchants."""
    programs = [_program(n, rng) for n in range(PROGRAMS)]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO programs (id, name, qualifying_threshold, reward_config, "
                "display_content, rules) SELECT p->>'id', p->>'name', "
                "(p->>'qualifying_threshold')::int, p->'reward_config', p->'display_content', "
                "p->'rules' FROM jsonb_array_elements(CAST(:programs AS jsonb)) AS p"
            ),
            {"programs": orjson.dumps(programs).decode()},
        )
        merchants: dict[str, list[str]] = {}
        rows: list[tuple[str, str, str]] = []
        for m in range(MEMBERS):
            member = f"m{m:05d}"
            chosen = rng.sample(programs, ENROLLMENTS_PER_MEMBER)
            merchants[member] = [x for p in chosen for x in p["rules"]["merchant_ids"]]  # type: ignore[index]
            rows += [(f"sc_{member}_{p['id']}", str(p["id"]), member) for p in chosen]
        conn.execute(
            text(
                "INSERT INTO stamp_collections (id, program_id, member_id, created_at) "
                "SELECT *, '2020-01-01T00:00:00Z' FROM unnest(CAST(:ids AS text[]), "
                "CAST(:programs AS text[]), CAST(:members AS text[]))"
            ),
            {
                "ids": [r[0] for r in rows],
                "programs": [r[1] for r in rows],
                "members": [r[2] for r in rows],
            },
        )
    return merchants


HOT_MEMBERS = 2_000
HOT_SHARE = 0.8


def transactions(
    n: int, merchants: dict[str, list[str]], rng: random.Random, prefix: str = "tx"
) -> list[dict[str, object]]:
    """`n` clearings; most come from a few busy members, half at merchants they collect at."""
    members = list(merchants)
    start = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    bodies: list[dict[str, object]] = []
    for i in range(n):
        hot = rng.random() < HOT_SHARE
        member = rng.choice(members[:HOT_MEMBERS]) if hot else rng.choice(members)
        merchant = (
            rng.choice(merchants[member])
            if rng.random() < 0.5
            else f"mer_{rng.randrange(MERCHANTS)}"
        )
        body = {
            "id": f"{prefix}_{i}",
            "type": "clearing",
            "member_id": member,
            "amount": rng.randint(100, 5000),
            "currency": "GBP",
            "merchant": {"id": merchant, "name": "Shop", "mcc": "5814"},
            "card": {"id": "card_1", "scheme": "visa"},
            "occurred_at": datetime.fromtimestamp(start + i, UTC).isoformat(),
        }
        bodies.append(body)
    return bodies


def single_records(topic: str, bodies: list[dict[str, object]]) -> list[ProducerRecord]:
    return [ProducerRecord(topic, orjson.dumps(b), str(b["member_id"]).encode()) for b in bodies]


def packed_records(topic: str, bodies: list[dict[str, object]], pack: int) -> list[ProducerRecord]:
    """Bank batches: up to `pack` transactions of one member key per message, in order."""
    by_member: dict[str, list[dict[str, object]]] = {}
    for body in bodies:
        by_member.setdefault(str(body["member_id"]), []).append(body)
    return [
        ProducerRecord(topic, orjson.dumps(group[i : i + pack]), member.encode())
        for member, group in by_member.items()
        for i in range(0, len(group), pack)
    ]


def _environment(database_url: str, bootstrap: str, topics: TopicSettings) -> dict[str, str]:
    return os.environ | {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "AUTOSTAMP_LOG_LEVEL": "WARNING",
        "AUTOSTAMP_KAFKA_CONSUMER_GROUP": f"bench-{uuid.uuid4().hex[:8]}",
        "AUTOSTAMP_TOPIC_TRANSACTIONS": topics.transactions,
        "AUTOSTAMP_TOPIC_DEAD_LETTER": topics.dead_letter,
        "AUTOSTAMP_TOPIC_PROGRAMS": topics.programs,
        "AUTOSTAMP_TOPIC_PAYOUTS": topics.payouts,
        "AUTOSTAMP_KAFKA_SESSION_TIMEOUT_S": "6",
        "AUTOSTAMP_KAFKA_REBALANCE_TIMEOUT_S": "6",
        "AUTOSTAMP_KAFKA_HEARTBEAT_INTERVAL_S": "1",
        "AUTOSTAMP_KAFKA_COMMIT_INTERVAL_S": "0.1",
    }


def _bare_rate(env: dict[str, str], topic: str, n: int, out: Path) -> float:
    argv = [sys.executable, "-m", "autostamp.bench.bare_consumer", topic, str(n), str(out)]
    subprocess.run(argv, env=env, capture_output=True, timeout=900, check=True)
    return n / float(out.read_text())


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _offsets(consumer: Any, topic: str, group_reader: Any) -> tuple[int, int]:
    """(committed by the workers' group, written) messages of `topic`, over its partitions."""
    from confluent_kafka import TopicPartition

    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    committed = group_reader.committed(partitions, timeout=10)
    done = sum(max(tp.offset, 0) for tp in committed)
    end = sum(consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions)
    return done, end


def _pipeline(env: dict[str, str], topic: str, workers: int) -> tuple[float, float]:
    """(seconds, peak worker RSS in MB) from the group's first commit to its last one."""
    from confluent_kafka import Consumer

    bootstrap, group = env["KAFKA_BOOTSTRAP_SERVERS"], env["AUTOSTAMP_KAFKA_CONSUMER_GROUP"]
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    watcher = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{group}-watch"})
    procs = [
        subprocess.Popen([sys.executable, "-m", "autostamp", "worker"], env=env)
        for _ in range(workers)
    ]
    try:
        while (progress := _offsets(watcher, topic, reader))[0] == 0:
            time.sleep(0.01)
        first = time.perf_counter()
        while (progress := _offsets(watcher, topic, reader))[0] < progress[1]:
            time.sleep(0.05)
        elapsed = time.perf_counter() - first
        rss = max(_peak_rss_mb(p.pid) for p in procs)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)
        reader.close()
        watcher.close()
    return elapsed, rss


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


def run(quick: bool = False, **options: object) -> None:
    n = int(str(options.get("transactions") or (20_000 if quick else 200_000)))
    pack = int(str(options.get("pack") or 100))
    workers = int(os.environ.get("AUTOSTAMP_BENCH_WORKERS", "2"))
    rng = random.Random(42)
    with ExitStack() as stack:
        # Entered first, so removed last: after the services that write into it stopped.
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="autostamp-bench-"))
        database_url, where = stack.enter_context(scratch_database())
        bootstrap = _broker(stack, Path(tmp))
        engine = create_engine(database_url)
        stack.callback(engine.dispose)
        merchants = seed(engine, rng)
        publisher = KafkaPublisher({"bootstrap.servers": bootstrap})
        stack.callback(publisher.close)  # before the broker stops: no reconnect noise
        single, packed = _topics(uuid.uuid4().hex[:6]), _topics(uuid.uuid4().hex[:6])
        for topics in (single, packed):
            ensure_topics({"bootstrap.servers": bootstrap}, topics)
        print(
            f"programs={PROGRAMS} collections={MEMBERS * ENROLLMENTS_PER_MEMBER} "
            f"transactions={n} partitions={PARTITIONS} workers={workers} pack={pack} "
            f"database={where}"
        )
        started = time.perf_counter()
        publisher.publish(single_records(single.transactions, transactions(n, merchants, rng)))
        print(f"produce_per_s={n / (time.perf_counter() - started):.0f}")
        publisher.publish(
            packed_records(packed.transactions, transactions(n, merchants, rng, "pk"), pack)
        )
        env = _environment(database_url, bootstrap, single)
        bare = _bare_rate(env, single.transactions, n, Path(tmp) / "bare.txt")
        print(f"bare_per_s={bare:.0f}")
        seconds, rss = _pipeline(env, single.transactions, workers)
        rate = n / seconds
        print(f"single_tx_per_s={rate:.0f} single_rss_mb={rss:.0f}")
        packed_env = _environment(database_url, bootstrap, packed)
        packed_seconds, packed_rss = _pipeline(packed_env, packed.transactions, workers)
        packed_rate = n / packed_seconds
        print(f"packed_tx_per_s={packed_rate:.0f} packed_rss_mb={packed_rss:.0f}")
        with engine.connect() as conn:
            stamps = conn.execute(text("SELECT count(*) FROM stamps")).scalar_one()
            rewards = conn.execute(text("SELECT count(*) FROM rewards")).scalar_one()
        print(f"stamps={stamps} rewards={rewards} stamped_share={stamps / (2 * n):.2f}")
        print(
            f"pipeline: tx_per_s={rate:.0f} bare_per_s={bare:.0f} ratio={rate / bare:.2f} "
            f"packed_tx_per_s={packed_rate:.0f} packed_ratio={packed_rate / bare:.2f} "
            f"worker_rss_mb={max(rss, packed_rss):.0f}"
        )
