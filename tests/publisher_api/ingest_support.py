"""The API with ingestion to a real broker, and the helpers its tests share."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from autostamp.settings import (
    ApiSettings,
    IngestSettings,
    KafkaSettings,
    Settings,
    TopicSettings,
    WebhookSettings,
)
from autostamp.wiring import api_config, ingest_sink
from ledger import keys
from ledger.database import transaction
from ledger.request_signing import signature
from publisher_api import create_app
from streams.kafka import TopicSink
from tests.publisher_api.conftest import FakeClock, broker_up, no_webhook_urls
from tests.webhooks.support import TEST_KEYRING

INGEST = "/ingest.v1/transactions"


def sink_to(bootstrap: str, topics: TopicSettings, ack_timeout_s: float = 10.0) -> TopicSink:
    """The producer `autostamp api` builds, on `bootstrap` and the test's topics."""
    kafka = KafkaSettings.model_validate({"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "topics": topics})
    settings = Settings(kafka=kafka, ingest=IngestSettings(ack_timeout_s=ack_timeout_s))
    return ingest_sink(settings)


def ingest_app(
    engine: AsyncEngine, sink: TopicSink, limits: IngestSettings | None = None
) -> FastAPI:
    """The API as `autostamp api` builds it, producing to `sink`, with `limits` of ingestion."""
    generous = ApiSettings(rate_limit_per_minute=60_000, rate_limit_burst=10_000)
    config = api_config(generous, WebhookSettings(), TEST_KEYRING, limits)
    return create_app(
        config, engine, broker_up, no_webhook_urls, clock=FakeClock(), ingest_sink=sink
    )


@asynccontextmanager
async def client_of(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def ingest_key(engine: AsyncEngine, signed: bool = False) -> keys.IssuedKey:
    keyring = TEST_KEYRING if signed else None
    async with transaction(engine) as conn:
        return await keys.create_key(conn, "bank feed", keys.Scope.INGEST, signing_keyring=keyring)


def tx(id: str, member: str = "m1", **extra: Any) -> dict[str, Any]:
    return {
        "id": id,
        "type": "clearing",
        "member_id": member,
        "amount": 450,
        "currency": "GBP",
        "merchant": {"id": "mer_bean", "name": "Bean There", "mcc": "5814"},
        "card": {"id": "card_1", "scheme": "visa"},
        "occurred_at": "2026-03-02T10:00:00+00:00",
        **extra,
    }


def signed_headers(secret: str, body: bytes, at: int | None = None) -> dict[str, str]:
    at = int(time.time()) if at is None else at
    return {"X-Timestamp": str(at), "X-Signature": signature(secret, at, body)}


def topic_messages(bootstrap: str, topic: str, expected: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of the first `expected` messages found on `topic`, any partition."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ingest-test-reader"})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    found: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + 30
    try:
        while len(found) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                found.append((message.key(), message.value()))
    finally:
        consumer.close()
    return found


def body_of(*items: object) -> bytes:
    return orjson.dumps(list(items))
