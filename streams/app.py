"""The worker's faust app: the programs agent, the transactions batch consumer and the relay.

faust runs the process: its lifecycle, the `programs` agent, and two tasks.

- **stamp** drives `streams.consumer.BatchConsumer` over the transactions topic. faust's own
  per-event Stream is not on this path: measured side by side (`autostamp bench pipeline`),
  a bare faust agent that only decodes reads several times slower than confluent-kafka's
  batch consumer, and it commits offsets past an unacknowledged head gap.
- **publish** relays payouts and dead letters to Kafka; a record the broker refuses for good
  is marked and passed over, and a failing database or broker is retried like the stamping.

Every failure goes through one policy (`ledger.failures`): a bad event is dead-lettered and
the stream goes on; an infrastructure failure is retried, then the process stops at once,
acknowledging nothing, with an exit code that says which kind.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import faust
from faust.streams import Stream
from faust.types import EventT, StreamT

from ledger.batch import Rejected, Source
from ledger.errors import InfrastructureError
from ledger.failures import operator_message, retrying
from ledger.flow import record_flow
from ledger.programs import Verdict
from rules import ProgramDefinition
from streams.config import WorkerConfig
from streams.consumer import BatchConsumer
from streams.metrics import WorkerMetrics
from streams.program_signing import ProgramKeys, ProgramSignatureError
from streams.relay import Relay
from streams.service import StampingService

log = logging.getLogger(__name__)

EX_SOFTWARE = 70  # our own code failed on several events in a row
EX_TEMPFAIL = 75  # the infrastructure failed in a way that may heal
EX_CONFIG = 78  # the infrastructure refuses us until an operator acts


def exit_now(reason: BaseException) -> None:
    """Stop the process at once, so that no offset of the failed batch gets committed."""
    if isinstance(reason, InfrastructureError):
        code = EX_TEMPFAIL if reason.transient else EX_CONFIG
        log.critical("stopping the worker, nothing acknowledged: %s", operator_message(reason))
    else:
        code = EX_SOFTWARE
        log.critical("stopping the worker, nothing acknowledged: %r", reason, exc_info=reason)
    logging.shutdown()
    os._exit(code)


def faust_app(config: WorkerConfig, app_id: str) -> faust.App:
    """A faust app with our consumer settings, for the worker and the benchmark's baseline."""
    servers = config.bootstrap_servers.split(",")
    # faust makes its data directory at start, but not the directories above it.
    Path(config.data_dir).parent.mkdir(parents=True, exist_ok=True)
    return faust.App(
        app_id,
        broker=[f"kafka://{server.strip()}" for server in servers],
        store="memory://",
        datadir=config.data_dir,
        web_enabled=False,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=config.session_timeout_s,
        broker_rebalance_timeout=config.rebalance_timeout_s,
        broker_heartbeat_interval=config.heartbeat_interval_s,
        broker_commit_interval=config.commit_interval_s,
        broker_commit_every=config.batch_size,
        broker_max_poll_records=config.batch_size,
        stream_buffer_maxsize=config.batch_size * 2,
        stream_wait_empty=False,
    )


def raw_topic(app: faust.App, name: str) -> faust.TopicT:
    # Raw bytes: faust acknowledges and skips a message its own deserializer fails on, so
    # decoding is ours, and a bad message reaches the dead letters with its reason.
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


def create_worker_app(
    config: WorkerConfig,
    service: StampingService,
    relay: Relay,
    crash: Callable[[BaseException], None] = exit_now,
    metrics: WorkerMetrics | None = None,
) -> faust.App:
    """The worker app wired to `service`; opens nothing until the worker starts it."""
    # Its own group: faust's assignor and the batch consumer's cannot share one.
    app = faust_app(config, f"{config.group}-programs")
    programs = raw_topic(app, config.topics.programs)
    keys = ProgramKeys(config.program_keys)
    consumer = BatchConsumer(config, metrics)

    @app.agent(programs, name="programs", concurrency=1)
    async def sync_programs(stream: StreamT[Any]) -> AsyncIterator[None]:
        batches = cast(Stream[Any], stream).noack_take(100, within=config.batch_within_s)
        async for events in cast(AsyncIterator[Sequence[EventT[Any]]], batches):
            try:
                await apply_definitions(service, events, keys, metrics)
            except Exception as exc:
                crash(exc)
                return
            for event in events:
                await cast(Stream[Any], stream).ack(event)
            yield None

    @app.task
    async def stamp() -> None:
        try:
            await consumer.run(service.stamp, lambda: bool(app.should_stop))
        except Exception as exc:
            crash(exc)

    @app.task
    async def publish() -> None:
        # The same policy as the stamping: retried, then the worker stops, so that payouts
        # never stall unseen behind a database or broker that refuses them.
        try:
            while not app.should_stop:
                settled = await retrying(relay.run_once, service.backoff, "publishing payouts")
                if not settled:
                    await asyncio.sleep(config.relay_interval_s)
        except Exception as exc:
            crash(exc)

    if metrics is not None:

        @app.timer(FLOW_EVERY_S)
        async def add_to_flow() -> None:
            await _record_flow(service, metrics)

    return app


FLOW_EVERY_S = 5.0
"""How often a worker adds what it applied to the console's flow (`ledger.flow`)."""
WORKER_NAME = f"{socket.gethostname()}:{os.getpid()}"[:80]


async def _record_flow(service: StampingService, metrics: WorkerMetrics) -> None:
    """Add this worker's counts to the flow; on failure they wait for the next time, and the
    worker goes on: the flow is for people to look at, never worth stopping the stamping."""
    minutes, lags = metrics.flow.drain()
    if not minutes and not lags:
        return
    try:
        async with service.engine.begin() as conn:
            await record_flow(conn, WORKER_NAME, minutes, lags, datetime.now(UTC))
    except Exception as exc:
        metrics.flow.restore(minutes)
        log.warning("flow not recorded for the console (will try again): %s", exc)


async def apply_definitions(
    service: StampingService,
    events: Sequence[EventT[Any]],
    keys: ProgramKeys,
    metrics: WorkerMetrics | None = None,
) -> None:
    """Apply signed program definitions; one unsigned, or that the ledger cannot take, is
    dead-lettered, not lost, in the same transaction as the batch's valid ones."""
    valid: list[tuple[ProgramDefinition, Source]] = []
    refused: list[Rejected] = []
    for event in events:
        message = event.message
        source = Source(message.topic, message.partition, message.offset)
        value = message.value or b""
        try:
            keys.verify(message.key, value, message.headers)
            valid.append((ProgramDefinition.model_validate_json(value), source))
        except ProgramSignatureError as exc:
            refused.append(Rejected(source, message.key, value, str(exc)))
        except ValueError as exc:
            refused.append(Rejected(source, message.key, value, str(exc)[:1000]))
    judged = await service.judge_programs(valid, refused)
    if metrics is not None:
        metrics.judged_definitions(judged)
    if judged.refused:
        log.error("programs topic: refused %d definitions (see dead letters)", len(judged.refused))
    if superseded := judged.described(Verdict.SUPERSEDED):
        # Not dead-lettered: reading a compacted topic again replays older versions as well.
        log.warning("programs topic: older than the ledger's, changed nothing: %s", superseded)
    if applied := judged.described(Verdict.APPLIED):
        log.info("applied program definitions: %s", applied)
