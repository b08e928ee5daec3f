"""Puts rewards on the payouts topic and dead letters on the dead-letter topic, from the ledger.

Rows are claimed, published, and marked in one database transaction: a crash in between
publishes them again (at least once; a payout carries its reward id as idempotency key). A
broker that fails raises, and the worker's policy retries it (`streams.app`). A dead
letter goes out as a bounded prefix of its bytes, with its size and hash, so the broker can
always take it; one it still refuses is marked, counted and logged, and never retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.database import transaction
from ledger.dead_letters import DeadLetter, claim_unpublished, mark_published, mark_unpublishable
from ledger.events import rfc3339
from ledger.payouts import Payout, claim_payouts, mark_payouts_published
from streams.config import Topics
from streams.kafka import Delivery, KafkaPublisher, ProducerRecord

log = logging.getLogger(__name__)

CLAIM_LIMIT = 1000
# What of a dead letter's bytes goes on the topic: far below any broker's message limit.
PUBLISHED_PREFIX_BYTES = 64 * 1024
REASON_HEADER_BYTES = 1024


def payout_record(topic: str, payout: Payout) -> ProducerRecord:
    body = {
        "reward_id": payout.reward_id,
        "idempotency_key": payout.reward_id,
        # Which attempt this is: a failed payout retried goes out again with the same key.
        "attempt": payout.attempt,
        "collection_id": payout.collection_id,
        "member_id": payout.member_id,
        "loyalty_program_id": payout.program_id,
        "type": payout.type,
        "amount": payout.amount,
        "currency": payout.currency,
        "cycle": payout.cycle,
        "transaction_id": payout.transaction_id,
        "purchase_id": payout.purchase_id,
        "created_at": rfc3339(payout.created_at),
    }
    headers = (("idempotency-key", payout.reward_id.encode()),)
    return ProducerRecord(topic, orjson.dumps(body), payout.collection_id.encode(), headers)


def dead_letter_record(topic: str, letter: DeadLetter) -> ProducerRecord:
    prefix = letter.value[:PUBLISHED_PREFIX_BYTES]
    headers = (
        ("error", letter.reason.encode()[:REASON_HEADER_BYTES]),
        ("source-topic", letter.source_topic.encode()),
        ("source-partition", str(letter.source_partition).encode()),
        ("source-offset", str(letter.source_offset).encode()),
        ("source-item", str(letter.item).encode()),
        ("original-size", str(letter.size).encode()),
        ("original-sha256", letter.sha256.encode()),
        ("truncated", b"true" if len(prefix) < letter.size else b"false"),
        ("dead-letter-id", str(letter.id).encode()),
    )
    return ProducerRecord(topic, prefix, letter.key, headers)


@dataclass
class RelayCounts:
    """What the relay has done since it started, for logs and metrics."""

    payouts: int = 0
    dead_letters: int = 0
    unpublishable: int = 0


@dataclass
class Relay:
    """Publishes what the ledger holds for Kafka, marking each row once the broker confirmed it."""

    engine: AsyncEngine
    publisher: KafkaPublisher
    topics: Topics
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    counts: RelayCounts = field(default_factory=RelayCounts)

    async def run_once(self) -> int:
        """Publish one claim of each kind; how many rows were settled."""
        return await self._payouts() + await self._dead_letters()

    async def _payouts(self) -> int:
        async with transaction(self.engine) as conn:
            payouts = await claim_payouts(conn, CLAIM_LIMIT)
            if not payouts:
                return 0
            records = [payout_record(self.topics.payouts, p) for p in payouts]
            deliveries = await asyncio.to_thread(self.publisher.deliver, records)
            done = [p.reward_id for p, d in zip(payouts, deliveries, strict=True) if not d.error]
            _log_failures("payout", deliveries)
            await mark_payouts_published(conn, done, self.clock())
        self.counts.payouts += len(done)
        return len(done)

    async def _dead_letters(self) -> int:
        async with transaction(self.engine) as conn:
            letters = await claim_unpublished(conn, CLAIM_LIMIT)
            if not letters:
                return 0
            records = [dead_letter_record(self.topics.dead_letter, d) for d in letters]
            deliveries = await asyncio.to_thread(self.publisher.deliver, records)
            pairs = list(zip(letters, deliveries, strict=True))
            done = [letter.id for letter, d in pairs if d.error is None]
            for letter, delivery in pairs:
                if delivery.refused:
                    log.error("dead letter %d cannot be published: %s", letter.id, delivery.error)
                    await mark_unpublishable(conn, letter.id, delivery.error or "refused")
                    self.counts.unpublishable += 1
            _log_failures("dead letter", [d for d in deliveries if not d.refused])
            await mark_published(conn, done, self.clock())
        self.counts.dead_letters += len(done)
        return len(done)


def _log_failures(kind: str, deliveries: Sequence[Delivery]) -> None:
    failed = [d for d in deliveries if d.error is not None]
    if failed:
        log.warning(
            "%d %s records not published, tried again later: %s", len(failed), kind, failed[0].error
        )
