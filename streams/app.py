"""The faust app: agents that stamp transactions and sync programs, timers that relay and refresh.

Offsets are acknowledged only after the database transaction holding a batch's effects
has committed. When the database stays unavailable past the retries, the worker exits
without acknowledging: the supervisor (or the orchestrator) restarts it, and the batch is
consumed again, which the ledger makes harmless.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, cast

import faust
from faust.streams import Stream
from faust.types import EventT, StreamT
from sqlalchemy.exc import DBAPIError

from autostamp.settings import KafkaSettings, Settings
from ledger.errors import AutostampError
from rules import ProgramDefinition
from streams.decoding import RawMessage
from streams.relay import Relay
from streams.service import StampingService

log = logging.getLogger(__name__)

EX_TEMPFAIL = 75


def exit_now(reason: BaseException) -> None:
    """Stop the process at once, so that no offset of the failed batch gets committed."""
    log.critical("stopping the worker without committing offsets: %s", reason)
    logging.shutdown()
    os._exit(EX_TEMPFAIL)


def _event_batches(
    stream: StreamT[Any], size: int, within_s: float
) -> AsyncIterator[Sequence[EventT[Any]]]:
    """Batches of events left unacknowledged: each is acked only after its batch committed."""
    # faust annotates noack_take as yielding values; it yields the events themselves.
    batches = cast(Stream[Any], stream).noack_take(size, within=within_s)
    return cast(AsyncIterator[Sequence[EventT[Any]]], batches)


def _raw(event: EventT[Any]) -> RawMessage:
    message = event.message
    return RawMessage(message.topic, message.partition, message.offset, message.key, message.value)


def _raw_topic(app: faust.App, name: str) -> faust.TopicT:
    # Raw bytes: faust acknowledges and skips a message its own deserializer fails on, so
    # decoding is ours, and a bad message reaches the dead letters with its reason.
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


def faust_app(kafka: KafkaSettings, app_id: str) -> faust.App:
    """A faust app with our consumer settings, for the worker and the benchmark's baseline."""
    servers = (kafka.bootstrap_servers or "").split(",")
    return faust.App(
        app_id,
        broker=[f"kafka://{server.strip()}" for server in servers],
        store="memory://",
        web_enabled=False,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=kafka.session_timeout_s,
        broker_rebalance_timeout=kafka.rebalance_timeout_s,
        broker_heartbeat_interval=kafka.heartbeat_interval_s,
        broker_commit_interval=kafka.commit_interval_s,
        broker_commit_every=kafka.batch_size,
        broker_max_poll_records=kafka.batch_size,
        stream_buffer_maxsize=kafka.batch_size * 2,
        stream_wait_empty=False,
    )


def create_app(
    settings: Settings,
    service: StampingService,
    relay: Relay,
    crash: Callable[[BaseException], None] = exit_now,
) -> faust.App:
    """A faust app wired to `service`; opens nothing until the worker starts it."""
    kafka = settings.kafka
    app = faust_app(kafka, kafka.consumer_group)
    transactions = _raw_topic(app, kafka.topics.transactions)
    programs = _raw_topic(app, kafka.topics.programs)

    @app.agent(transactions, name="stamp", concurrency=1)
    async def stamp(stream: StreamT[Any]) -> AsyncIterator[None]:
        await service.refresh_programs()
        async for events in _event_batches(stream, kafka.batch_size, kafka.batch_within_s):
            try:
                await service.stamp([_raw(event) for event in events])
            except AutostampError as exc:
                crash(exc)
                return
            for event in events:
                await cast(Stream[Any], stream).ack(event)
            yield None

    @app.agent(programs, name="programs", concurrency=1)
    async def sync_programs(stream: StreamT[Any]) -> AsyncIterator[None]:
        async for events in _event_batches(stream, 100, 0.5):
            await _apply_programs(service, [event.message.value for event in events], crash)
            for event in events:
                await cast(Stream[Any], stream).ack(event)
            yield None

    @app.timer(kafka.programs_refresh_s)
    async def refresh() -> None:
        try:
            await service.refresh_programs()
        except DBAPIError as exc:
            log.warning("programs not refreshed, will try again: %s", exc)

    @app.task
    async def publish() -> None:
        # A loop rather than a timer: a backlog is drained without waiting for the next tick.
        while not app.should_stop:
            try:
                published = await relay.run_once()
            except (AutostampError, DBAPIError) as exc:
                log.warning("relay will try again: %s", exc)
                published = 0
            if not published:
                await asyncio.sleep(kafka.relay_interval_s)

    return app


async def _apply_programs(
    service: StampingService, values: list[bytes | None], crash: Callable[[BaseException], None]
) -> None:
    definitions: list[ProgramDefinition] = []
    for value in values:
        try:
            definitions.append(ProgramDefinition.model_validate_json(value or b""))
        except ValueError as exc:
            log.error("programs topic: refused a definition: %s", exc)
    try:
        changed = await service.apply_programs(definitions)
    except AutostampError as exc:
        crash(exc)
        return
    if changed:
        log.info("applied program definitions: %s", ", ".join(changed))
        await service.refresh_programs()
