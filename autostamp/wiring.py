"""Builds engines, clients and services from settings; the only place that does, nothing at import.

The services take plain values: each package's config dataclass is filled in here.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from autostamp.settings import ApiSettings, IngestSettings, Settings, WebhookSettings
from autostamp.state_secrets import state_secret
from ledger.errors import AutostampError, BrokerError, SecretKeyError, SecretKeyMissing
from ledger.pseudonyms import Pseudonyms
from ledger.sealing import Keyring

# The services are imported where they are built: a command loads only what it runs.
log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import faust
    from fastapi import FastAPI
    from prometheus_client import CollectorRegistry

    from ledger.webhook_endpoints import UrlCheck
    from publisher_api.config import ApiConfig, ConsoleConfig, IngestConfig
    from publisher_api.state import BrokerCheck
    from streams.config import WorkerConfig
    from streams.kafka import TopicSink
    from streams.metrics import WorkerMetrics
    from streams.program_signing import ProgramKeys
    from webhooks.config import DeliveryConfig
    from webhooks.metrics import DispatcherMetrics
    from webhooks.urls import NetworkPolicy, Resolver


def database_url(settings: Settings) -> str:
    """The configured database, else the embedded one that `autostamp up` runs on this machine."""
    if settings.database.url is None:
        from autostamp.embedded import EmbeddedPostgres

        embedded = EmbeddedPostgres(
            embedded_postgres_root(settings), settings.database.embedded_port
        )
        return embedded.url()
    return sqlalchemy_url(settings.database.url.get_secret_value())


def embedded_postgres_root(settings: Settings) -> Path:
    """Where the embedded PostgreSQL keeps its data and its password."""
    return settings.state_dir.resolve() / "postgres"


def sqlalchemy_url(url: str) -> str:
    """A PostgreSQL URL as SQLAlchemy wants it, with the psycopg driver named."""
    # Accept the plain libpq form that users copy from elsewhere.
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def libpq_url(url: str) -> str:
    """A PostgreSQL URL as psycopg itself wants it, whichever of the two forms it is in."""
    return sqlalchemy_url(url).replace("postgresql+psycopg://", "postgresql://", 1)


def sync_engine(settings: Settings) -> Engine:
    return create_engine(database_url(settings), pool_pre_ping=True, pool_size=2)


def async_engine(settings: Settings) -> AsyncEngine:
    # No pre-ping: it costs a round trip per transaction. A connection lost to a database
    # restart fails one transaction, which invalidates the pool, and callers retry or answer 503.
    return create_async_engine(
        database_url(settings),
        pool_size=settings.database.pool_size,
        connect_args=statement_timeout(settings.database.statement_timeout_s),
    )


def statement_timeout(seconds: float) -> dict[str, str]:
    """psycopg's connection options giving every statement on it at most `seconds`; 0: none."""
    return {"options": f"-c statement_timeout={round(seconds * 1000)}"}


def api_read_options(seconds: float) -> dict[str, str]:
    """The API's read connections: a statement timeout, and no JIT compilation.

    The API's reads are short index walks; a generic plan of a filtered operations page is
    estimated dear enough to trigger JIT, which measured 17.6 ms against 10.7 ms without.
    """
    return {"options": statement_timeout(seconds)["options"] + " -c jit=off"}


def bootstrap_servers(settings: Settings) -> str:
    """The configured brokers, else the embedded one that `autostamp up` runs on this machine."""
    return settings.kafka.bootstrap_servers or f"127.0.0.1:{settings.kafka.embedded_port}"


def kafka_client_config(settings: Settings) -> dict[str, Any]:
    """librdkafka settings shared by our confluent-kafka producers and admin client."""
    return {"bootstrap.servers": bootstrap_servers(settings), "client.id": "autostamp"}


PROGRAMS_KEY = "AUTOSTAMP_PROGRAMS_SIGNING_KEY"
PROGRAMS_KEY_FILE = "programs-signing"  # under the state directory, for the embedded default


class SettingRequired(AutostampError):
    """A setting the process cannot start without is unset or unusable; the message names it."""


def programs_signing_keys(settings: Settings) -> ProgramKeys:
    """The programs topic's keys: as configured, else, on the embedded broker, one made once."""
    from streams.program_signing import ProgramKeys

    configured = settings.programs_signing_key
    if configured is None and settings.kafka.bootstrap_servers is None:
        return ProgramKeys((embedded_programs_key(settings),))
    if configured is None:
        raise SettingRequired(
            f"{PROGRAMS_KEY} is not set: the worker applies only program definitions signed "
            "with it, and `programs apply` signs with it. Give every worker and whoever runs "
            "`programs apply` the same random text, e.g. from "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    try:
        return ProgramKeys.parse(configured.get_secret_value())
    except ValueError as exc:
        raise SettingRequired(f"{PROGRAMS_KEY}: {exc}") from exc


def embedded_programs_key(settings: Settings) -> str:
    """The embedded default's programs key, made under the state directory the first time."""
    return state_secret(settings.state_dir.resolve(), PROGRAMS_KEY_FILE)


def worker_config(settings: Settings) -> WorkerConfig:
    """What a stream worker needs to know: its Kafka clients, group, topics and batching."""
    from streams.config import Topics, WorkerConfig

    kafka, topics = settings.kafka, settings.kafka.topics
    return WorkerConfig(
        client=kafka_client_config(settings),
        group=kafka.consumer_group,
        topics=Topics(topics.transactions, topics.dead_letter, topics.programs, topics.payouts),
        session_timeout_s=kafka.session_timeout_s,
        rebalance_timeout_s=kafka.rebalance_timeout_s,
        heartbeat_interval_s=kafka.heartbeat_interval_s,
        batch_size=kafka.batch_size,
        batch_within_s=kafka.batch_within_s,
        commit_interval_s=kafka.commit_interval_s,
        relay_interval_s=kafka.relay_interval_s,
        data_dir=str(settings.state_dir / "faust"),
        program_keys=programs_signing_keys(settings).keys,
    )


def build_worker(settings: Settings, metrics: WorkerMetrics | None = None) -> faust.App:
    """The stream worker's faust app on the configured database and broker."""
    from ledger.failures import Backoff
    from streams.app import create_worker_app
    from streams.kafka import KafkaPublisher
    from streams.relay import Relay
    from streams.service import StampingService

    config = worker_config(settings)
    engine = async_engine(settings)
    relay = Relay(engine, KafkaPublisher(config.client), config.topics)
    retry = settings.retry
    backoff = Backoff(retry.attempts, retry.first_delay_s, retry.max_delay_s)
    pseudonyms = Pseudonyms.of(secret_keyring(settings))
    service = StampingService(
        engine, backoff=backoff, chunk=config.batch_size, pseudonyms=pseudonyms
    )
    return create_worker_app(config, service, relay, metrics=metrics)


def tune_collector() -> None:
    """The garbage-collector settings of a worker or API process, once its app is built.

    Each batch or request makes many short-lived objects: keep what lives for the whole run
    (modules, the app) out of every collection, and collect the young ones less often.
    Measured on decode and match: 19 µs per transaction with the defaults, 14 with these.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def run_worker(settings: Settings) -> None:
    """Run a worker until SIGTERM or SIGINT; stored offsets are committed on the way out."""
    import faust

    from streams.metrics import WorkerMetrics

    metrics = WorkerMetrics()
    serve_metrics(metrics.registry, settings.metrics.host, settings.metrics.worker_port, "worker")
    app = build_worker(settings, metrics)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), quiet=True)
    tune_collector()
    worker.execute_from_commandline()


def broker_metadata(config: dict[str, Any], timeout_s: float = 5.0) -> list[str]:
    """The topic names the broker knows; raises BrokerError when it does not answer."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    try:
        metadata = AdminClient(config).list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise BrokerError(f"broker {config['bootstrap.servers']} did not answer: {exc}") from exc
    return sorted(metadata.topics)


async def broker_reachable(config: dict[str, Any], timeout_s: float = 3.0) -> bool:
    """Readiness probe of the broker, off the event loop."""
    try:
        await asyncio.to_thread(broker_metadata, config, timeout_s)
    except BrokerError:
        return False
    return True


SECRET_KEY_FILE = "secret"  # noqa: S105 (the name of a file, not a secret)


def secret_keyring(settings: Settings) -> Keyring:
    """The keys that seal webhook secrets: AUTOSTAMP_SECRET_KEY, else, for the embedded
    database only, a key generated once in the state directory.

    Raises SecretKeyMissing when neither applies, SecretKeyError for a malformed key.
    """
    if settings.secret_key is not None:
        text = settings.secret_key.get_secret_value()
    elif settings.database.url is None:
        text = state_secret(settings.state_dir, SECRET_KEY_FILE)
    else:
        raise SecretKeyMissing(
            "AUTOSTAMP_SECRET_KEY is not set: it seals the webhook signing secrets in the "
            "database. Generate one with `autostamp webhooks new-secret-key` and give the same "
            "value to every process"
        )
    try:
        return Keyring.from_text(text)
    except SecretKeyError as exc:
        raise SecretKeyError(f"AUTOSTAMP_SECRET_KEY: {exc}") from None


def held_while_disabled(webhooks: WebhookSettings) -> timedelta:
    """How old an event held for a disabled endpoint may be and still go out on enabling."""
    return timedelta(seconds=webhooks.held_while_disabled_s)


def secret_grace(webhooks: WebhookSettings) -> timedelta:
    """How long a rotated webhook secret keeps signing beside the new one."""
    return timedelta(seconds=webhooks.secret_grace_period_s)


def api_config(
    api: ApiSettings,
    webhooks: WebhookSettings,
    keyring: Keyring,
    ingest: IngestSettings | None = None,
) -> ApiConfig:
    """The API's request limits, the grace its secret rotation grants, and its sealing keys."""
    from publisher_api.config import ApiConfig

    return ApiConfig(
        max_body_bytes=api.max_body_bytes,
        rate_limit_per_minute=api.rate_limit_per_minute,
        rate_limit_burst=api.rate_limit_burst,
        key_cache_s=api.key_cache_s,
        failed_auth_per_minute=api.failed_auth_per_minute,
        trusted_proxies=api.trusted_proxies,
        webhook_secret_grace=secret_grace(webhooks),
        webhook_held_while_disabled=held_while_disabled(webhooks),
        webhook_keyring=keyring,
        ingest=ingest_config(ingest or IngestSettings(), keyring),
    )


def console_config(settings: Settings) -> ConsoleConfig:
    from publisher_api.config import ConsoleConfig

    console = settings.console
    return ConsoleConfig(
        enabled=console.enabled,
        secure_cookie=console.secure_cookie,
        backtest_max_bytes=console.backtest_max_bytes,
        default_currency=settings.default_currency,
    )


def ingest_config(ingest: IngestSettings, keyring: Keyring) -> IngestConfig:
    """Ingestion's limits, and the keys that open the signing secrets of signed ingest keys
    (AUTOSTAMP_SECRET_KEY, as for webhook secrets)."""
    from publisher_api.config import IngestConfig

    return IngestConfig(
        max_body_bytes=ingest.max_body_bytes, max_items=ingest.max_items, keyring=keyring
    )


def ingest_sink(settings: Settings) -> TopicSink:
    """The API's producer to the transactions topic; librdkafka gives up on a message the
    broker has not acknowledged within the deadline, so none is sent after a 503."""
    from streams.kafka import KafkaPublisher, TopicSink

    deadline_s = settings.ingest.ack_timeout_s
    client = kafka_client_config(settings) | {"message.timeout.ms": round(deadline_s * 1000)}
    # The producer is made at the first ingestion: an API that never ingests never connects.
    publisher = KafkaPublisher(client, linger_ms=2)
    return TopicSink(publisher, settings.kafka.topics.transactions, deadline_s)


def delivery_config(
    webhooks: WebhookSettings, keyring: Keyring, networks: NetworkPolicy | None = None
) -> DeliveryConfig:
    """How a dispatcher delivers: its schedule, timeouts, concurrency, lease, and the keys
    that open the secrets it signs with."""
    from webhooks.config import DeliveryConfig
    from webhooks.retries import DeliverySchedule

    schedule = DeliverySchedule(
        webhooks.retry_schedule_s, webhooks.jitter, webhooks.max_retry_after_s
    )
    return DeliveryConfig(
        schedule=schedule,
        connect_timeout_s=webhooks.connect_timeout_s,
        read_timeout_s=webhooks.read_timeout_s,
        request_timeout_s=webhooks.request_timeout_s,
        networks=networks or _listed_networks(webhooks),
        concurrency=webhooks.concurrency,
        concurrency_per_endpoint=webhooks.concurrency_per_endpoint,
        poll_interval_s=webhooks.poll_interval_s,
        lease_s=webhooks.lease_s,
        disable_after_s=webhooks.disable_after_s,
        keyring=keyring,
    )


def url_check(settings: Settings) -> UrlCheck:
    """The dispatcher's URL policy with the system resolver, for registering endpoints."""
    from webhooks.transport import SystemResolver
    from webhooks.urls import url_policy

    return url_policy(SystemResolver(), policy=network_policy(settings))


EMBEDDED_ALLOWED_NETWORKS = "127.0.0.0/8,::1/128"
"""What the embedded default lets webhooks reach besides public addresses: this machine."""


def network_policy(settings: Settings) -> NetworkPolicy:
    """Public addresses and the listed networks; this machine too under the embedded default.

    A command run beside `autostamp up` (say `webhooks endpoints create`) sees no configured
    store, as `up` does, and gets the same default as the processes `up` starts.
    """
    from webhooks.urls import NetworkPolicy

    if "allowed_networks" not in settings.webhooks.model_fields_set and settings.embedded:
        return NetworkPolicy.of(*EMBEDDED_ALLOWED_NETWORKS.split(","))
    return _listed_networks(settings.webhooks)


def _listed_networks(webhooks: WebhookSettings) -> NetworkPolicy:
    from webhooks.urls import NetworkPolicy

    return NetworkPolicy.of(*(str(network) for network in webhooks.allowed_networks))


def build_api(settings: Settings, broker_check: BrokerCheck | None = None) -> FastAPI:
    """The publisher API on the configured database, probing the configured broker by default."""
    from ledger.statements import PooledStatements
    from publisher_api import create_app

    config = api_config(settings.api, settings.webhooks, secret_keyring(settings), settings.ingest)
    config = replace(config, console=console_config(settings))
    probe = broker_check or partial(broker_reachable, kafka_client_config(settings))
    # Reads of one statement run on a psycopg pool of their own, in autocommit, sized to the
    # requests a process serves at once, so steady load opens no connection.
    statements = PooledStatements(
        libpq_url(database_url(settings)),
        settings.api.connections_per_process,
        options=api_read_options(settings.api.statement_timeout_s),
    )
    sink = ingest_sink(settings)
    return create_app(
        config,
        async_engine(settings),
        probe,
        url_check(settings),
        statements=statements,
        ingest_sink=sink,
        on_shutdown=[sink.close],
    )


def api_from_environment() -> FastAPI:
    """The application one API process serves, from the settings in its environment."""
    app = build_api(Settings())
    tune_collector()
    return app


def api_url(api: ApiSettings) -> str:
    """Where a client on this machine reaches the API: its address, loopback for a wildcard."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(api.host, api.host)
    return f"http://[{host}]:{api.port}" if ":" in host else f"http://{host}:{api.port}"


def api_processes(api: ApiSettings) -> int:
    """How many API processes to run: as configured, else one per CPU core."""
    return api.processes or os.cpu_count() or 1


async def run_dispatcher(
    engine: AsyncEngine,
    config: DeliveryConfig,
    stop: asyncio.Event,
    *,
    resolver: Resolver | None = None,
    clock: Callable[[], datetime] | None = None,
    metrics: DispatcherMetrics | None = None,
) -> None:
    """Deliver webhooks until `stop` is set; attempts in flight finish and are recorded first."""
    from webhooks.attempts import Sender, utc_now
    from webhooks.dispatcher import Dispatcher
    from webhooks.store import SqlDeliveryStore
    from webhooks.transport import SystemResolver, webhook_transport

    now = clock or utc_now
    store = SqlDeliveryStore(
        engine, disable_after=timedelta(seconds=config.disable_after_s), keyring=config.keyring
    )
    async with webhook_transport(config, resolver or SystemResolver()) as transport:
        sender = Sender.from_config(transport, config, now)
        await Dispatcher(store, sender, config, now, metrics).run(stop)


def serve_metrics(registry: CollectorRegistry, host: str, port: int, role: str) -> int | None:
    """Serve `registry` in Prometheus form on `host:port` from a thread; the port, or None.

    Port 0 serves nothing. A port already taken (a second worker on the same machine, say)
    is logged and the process runs on without metrics: they are never worth an outage.
    """
    from prometheus_client import start_http_server

    if port == 0:
        return None
    try:
        server, _ = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        log.warning("%s metrics not served: %s:%d is taken (%s)", role, host, port, exc)
        return None
    served = int(server.server_port)
    log.info("%s metrics on http://%s:%d/metrics", role, host, served)
    return served
