"""Puts rewards on the payouts topic and dead letters on the dead-letter topic, from the ledger."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from autostamp.settings import TopicSettings
from ledger.publishing import (
    DeadLetterRecord,
    Payout,
    claim_dead_letters,
    claim_payouts,
    mark_dead_letters_published,
    mark_payouts_published,
)
from streams.kafka import KafkaPublisher, Record

CLAIM_LIMIT = 1000


def payout_record(topic: str, payout: Payout) -> Record:
    body = {
        "reward_id": payout.reward_id,
        "idempotency_key": payout.reward_id,
        "collection_id": payout.collection_id,
        "member_id": payout.member_id,
        "loyalty_program_id": payout.program_id,
        "type": payout.type,
        "amount": payout.amount,
        "currency": payout.currency,
        "cycle": payout.cycle,
        "transaction_id": payout.transaction_id,
        "purchase_id": payout.purchase_id,
        "created_at": payout.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
    headers = (("idempotency-key", payout.reward_id.encode()),)
    return Record(topic, orjson.dumps(body), payout.collection_id.encode(), headers)


def dead_letter_record(topic: str, letter: DeadLetterRecord) -> Record:
    headers = (
        ("error", letter.reason.encode()),
        ("source-topic", letter.source_topic.encode()),
        ("source-partition", str(letter.source_partition).encode()),
        ("source-offset", str(letter.source_offset).encode()),
        ("source-item", str(letter.item).encode()),
    )
    return Record(topic, letter.value, letter.key, headers)


@dataclass
class Relay:
    """Publishes what the ledger holds for Kafka, marking each row once the broker confirmed it."""

    engine: AsyncEngine
    publisher: KafkaPublisher
    topics: TopicSettings
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def run_once(self) -> int:
        return await self._payouts() + await self._dead_letters()

    async def _payouts(self) -> int:
        async with self.engine.begin() as conn:
            payouts = await claim_payouts(conn, CLAIM_LIMIT)
            if not payouts:
                return 0
            records = [payout_record(self.topics.payouts, p) for p in payouts]
            await asyncio.to_thread(self.publisher.publish, records)
            await mark_payouts_published(conn, [p.reward_id for p in payouts], self.clock())
        return len(payouts)

    async def _dead_letters(self) -> int:
        async with self.engine.begin() as conn:
            letters = await claim_dead_letters(conn, CLAIM_LIMIT)
            if not letters:
                return 0
            records = [dead_letter_record(self.topics.dead_letter, d) for d in letters]
            await asyncio.to_thread(self.publisher.publish, records)
            await mark_dead_letters_published(conn, [d.id for d in letters], self.clock())
        return len(letters)
