"""`autostamp bench pipeline`: end-to-end stamping rate against a bare consume-and-decode.

Seeds 1,000 programs and 100,000 enrolled collections, produces N transactions (about half
of them qualifying), then in one run measures (1) a faust agent that only consumes and
decodes them and (2) the real workers, from their first message until every event is in
the ledger. Both read the same topic; the ratio is the cost of our work over faust's own.
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

import orjson
from sqlalchemy import Engine, create_engine, text

from autostamp.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
from autostamp.settings import TopicSettings
from autostamp.topics import ensure_topics
from ledger import migrate
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
    return {
        "id": f"lp_{n:05d}",
        "name": f"Program {n}",
        "qualifying_threshold": rng.randint(5, 10),
        "reward_config": reward,
        "display_content": {
            "title": "Stamp card",
            "image": "https://cdn.example.com/card.png",
            "summary": "Collect stamps",
            "description": "A benchmark program",
            "terms": "None",
        },
        "rules": {"merchant_ids": merchants},
    }


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


def _pipeline(engine: Engine, env: dict[str, str], n: int, workers: int) -> tuple[float, float]:
    """(transactions per second, peak worker RSS in MB) from first event to the n-th more."""
    procs = [
        subprocess.Popen([sys.executable, "-m", "autostamp", "worker"], env=env)
        for _ in range(workers)
    ]
    count = text("SELECT count(*) FROM processed_transactions")
    try:
        with engine.connect() as conn:
            before = conn.execute(count).scalar_one()
            conn.commit()
            while conn.execute(count).scalar_one() == before:
                conn.commit()
                time.sleep(0.01)
            first = time.perf_counter()
            while (done := conn.execute(count).scalar_one() - before) < n:
                conn.commit()
                time.sleep(0.05)
            elapsed = time.perf_counter() - first
        rss = max(_peak_rss_mb(p.pid) for p in procs)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)
    return done / elapsed, rss


def _topics(suffix: str) -> TopicSettings:
    return TopicSettings(
        transactions=f"bench-tx-{suffix}",
        dead_letter=f"bench-dlq-{suffix}",
        programs=f"bench-programs-{suffix}",
        payouts=f"bench-payouts-{suffix}",
        partitions=PARTITIONS,
    )


def _embedded(stack: ExitStack, tmp: Path) -> tuple[str, str]:
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        postgres = EmbeddedPostgres(tmp / "pg", free_port())
        postgres.start()
        stack.callback(postgres.stop)
        database_url = postgres.url()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        broker = EmbeddedBroker(free_port(), tmp / "broker.log")
        broker.start()
        stack.callback(broker.stop)
        bootstrap = broker.bootstrap_servers
    return database_url, bootstrap


def run(quick: bool = False, **options: object) -> None:
    n = int(str(options.get("transactions") or (20_000 if quick else 200_000)))
    pack = int(str(options.get("pack") or 100))
    workers = int(os.environ.get("AUTOSTAMP_BENCH_WORKERS", "2"))
    rng = random.Random(42)
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        database_url, bootstrap = _embedded(stack, Path(tmp))
        engine = create_engine(database_url)
        stack.callback(engine.dispose)
        migrate.upgrade(engine)
        merchants = seed(engine, rng)
        publisher = KafkaPublisher({"bootstrap.servers": bootstrap})
        single, packed = _topics(uuid.uuid4().hex[:6]), _topics(uuid.uuid4().hex[:6])
        for topics in (single, packed):
            ensure_topics({"bootstrap.servers": bootstrap}, topics)
        print(
            f"programs={PROGRAMS} collections={MEMBERS * ENROLLMENTS_PER_MEMBER} "
            f"transactions={n} partitions={PARTITIONS} workers={workers} pack={pack}"
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
        rate, rss = _pipeline(engine, env, n, workers)
        print(f"single_tx_per_s={rate:.0f} single_rss_mb={rss:.0f}")
        packed_rate, packed_rss = _pipeline(
            engine, _environment(database_url, bootstrap, packed), n, workers
        )
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
