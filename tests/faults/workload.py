"""A stream of purchases, what exactly-once makes of it, and the checks fault tests end with."""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import orjson
from sqlalchemy import Engine, text

from ledger.events import EVENT_TYPES
from ledger.webhook_secrets import seal_secret
from streams.kafka import KafkaPublisher, ProducerRecord
from tests.streams.conftest import Ledger
from tests.streams.factories import enroll, program, save_programs, tx
from tests.support.reconciling import assert_reconciled
from tests.webhooks.support import TEST_KEYRING

THRESHOLD = 4

# Every qualifying purchase the ledger has remembered: one row per distinct transaction id.
PROCESSED = "SELECT count(*) FROM purchase_events"


@dataclass
class Workload:
    """Members enrolled in one program, buying at random; ids never repeat unless resent."""

    members: list[str] = field(default_factory=lambda: [f"m{i}" for i in range(40)])
    threshold: int = THRESHOLD
    purchases: list[dict[str, Any]] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def seed(self, engine: Engine) -> None:
        """The program and every member's collection, as they stand before the stream."""
        save_programs(engine, program(threshold=self.threshold))
        for member in self.members:
            enroll(engine, member=member)

    def buy(self, n: int) -> list[dict[str, Any]]:
        """`n` new purchases by random members."""
        start = len(self.purchases)
        new = [
            tx(f"t{k}", member=self.rng.choice(self.members), amount=100 + k % 900)
            for k in range(start, start + n)
        ]
        self.purchases += new
        return new

    def expected(self) -> dict[str, tuple[int, int, int, int, int]]:
        """Per member: (live stamps, rewards, unredeemed purchases, owed stamps, cycle)."""
        bought = Counter(p["member_id"] for p in self.purchases)
        n = self.threshold
        return {
            m: (bought[m], bought[m] // n, bought[m] % n, 0, bought[m] // n + 1)
            for m in self.members
        }


def subscribe_to_everything(engine: Engine) -> None:
    """A webhook endpoint for every event type, so that stamping writes the outbox too."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO webhook_endpoints (id, url, event_types, secret) VALUES "
                "('ep_all', 'https://hooks.example.com/all', CAST(:types AS jsonb), :secret)"
            ),
            {
                "secret": seal_secret(TEST_KEYRING, "ep_all", "secret", "whsec_eA=="),
                "types": orjson.dumps(list(EVENT_TYPES)).decode(),
            },
        )


def produce(publisher: KafkaPublisher, topic: str, bodies: list[Any]) -> None:
    """Put each body on `topic` keyed by its member (bytes go as they are), all confirmed."""
    records = []
    for body in bodies:
        value = body if isinstance(body, bytes) else orjson.dumps(body)
        member = body.get("member_id", "m0") if isinstance(body, dict) else "m0"
        records.append(ProducerRecord(topic, value, str(member).encode()))
    publisher.publish(records, timeout_s=60)


@dataclass
class Feed:
    """The banks keep sending: `size` new purchases every `every_s`, in the background.

    A fault injected while it runs lands on a worker with work in hand, however fast it is.
    """

    publisher: KafkaPublisher
    topic: str
    workload: Workload
    size: int = 50
    every_s: float = 0.05
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _failure: BaseException | None = None

    def __enter__(self) -> Feed:
        self._thread = threading.Thread(target=self._run, name="feed", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(90)
        if self._failure is not None and exc is None:
            raise AssertionError("the feed could not produce") from self._failure

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.every_s):
                produce(self.publisher, self.topic, self.workload.buy(self.size))
        except Exception as exc:
            self._failure = exc


def ledger_by_member(ledger: Ledger) -> dict[str, tuple[int, int, int, int, int]]:
    rows = ledger.rows(
        """
        SELECT c.member_id, c.unredeemed_purchases, c.owed_stamps, c.cycle,
               (SELECT count(*) FROM stamps s
                 WHERE s.collection_id = c.id AND s.status = 'live') AS live,
               (SELECT count(*) FROM rewards r WHERE r.collection_id = c.id) AS rewards
        FROM stamp_collections c
        """
    )
    return {
        r.member_id: (r.live, r.rewards, r.unredeemed_purchases, r.owed_stamps, r.cycle)
        for r in rows
    }


def assert_exactly_once(
    ledger: Ledger, database_url: str, workload: Workload, dead_letters: int = 0
) -> None:
    """Every purchase stamped once (INV-1, INV-2), rewards and counters to match, reconciled."""
    distinct = len({p["id"] for p in workload.purchases})
    assert ledger.scalar(PROCESSED) == distinct
    assert ledger.scalar("SELECT count(*) FROM stamps") == distinct
    doubled = "SELECT count(*) FROM stamps GROUP BY collection_id, purchase_id HAVING count(*) > 1"
    assert ledger.rows(doubled) == []
    rewards = sum(r for _, r, *_ in workload.expected().values())
    assert ledger.scalar("SELECT count(*) FROM rewards") == rewards
    if ledger.scalar("SELECT count(*) FROM webhook_endpoints WHERE id = 'ep_all'"):
        # R4: a reward and its event are written in one transaction, or neither is.
        announced = "SELECT count(*) FROM webhook_messages WHERE event_type = 'reward.triggered'"
        assert ledger.scalar(announced) == rewards
    assert ledger_by_member(ledger) == workload.expected()
    assert ledger.scalar("SELECT count(*) FROM dead_letters") == dead_letters
    assert_reconciled(database_url)


def snapshot(ledger: Ledger) -> dict[str, list[Any]]:
    """Every row a replay could add to or change, in a stable order."""
    queries = {
        "collections": "SELECT id, unredeemed_purchases, owed_stamps, cycle, updated_at "
        "FROM stamp_collections ORDER BY id",
        "stamps": "SELECT id, collection_id, purchase_id, status, cycle FROM stamps ORDER BY id",
        "rewards": "SELECT id, collection_id, cycle, amount, created_at FROM rewards ORDER BY id",
        "purchase_events": "SELECT id, source_partition, source_offset FROM purchase_events "
        "ORDER BY id",
        "undos": "SELECT id, original_id FROM undos ORDER BY id",
        "dead_letters": "SELECT id, source_partition, source_offset, size, sha256, reason "
        "FROM dead_letters ORDER BY id",
        "webhook_messages": "SELECT id, event_type FROM webhook_messages ORDER BY id",
        "webhook_deliveries": "SELECT id, message_id, endpoint_id FROM webhook_deliveries "
        "ORDER BY id",
    }
    return {name: [tuple(row) for row in ledger.rows(sql)] for name, sql in queries.items()}
