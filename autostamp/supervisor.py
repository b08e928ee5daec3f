"""`autostamp up`: the embedded stack and the three processes, supervised, stopped cleanly."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from types import FrameType

from autostamp.embedded import EmbeddedBroker, EmbeddedPostgres
from autostamp.settings import Settings
from autostamp.state_secrets import state_secret
from autostamp.topics import ensure_topics
from autostamp.wiring import (
    EMBEDDED_ALLOWED_NETWORKS,
    PROGRAMS_KEY,
    SECRET_KEY_FILE,
    api_url,
    embedded_postgres_root,
    embedded_programs_key,
    kafka_client_config,
    programs_signing_keys,
    secret_keyring,
    sync_engine,
)
from ledger import migrate
from ledger.sealing import Keyring

log = logging.getLogger("autostamp.up")

ROLES = ("worker", "api", "dispatcher")
MAX_RESTART_DELAY_S = 30.0

# A consumer group join waits out the rebalance timeout on the embedded broker: keep it short.
EMBEDDED_GROUP_TIMING = {
    "AUTOSTAMP_KAFKA_SESSION_TIMEOUT_S": "10",
    "AUTOSTAMP_KAFKA_REBALANCE_TIMEOUT_S": "6",
    "AUTOSTAMP_KAFKA_HEARTBEAT_INTERVAL_S": "1",
}


@dataclass
class Child:
    """One supervised process and its restart state."""

    role: str
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)

    def start(self) -> None:
        argv = [sys.executable, "-m", "autostamp", self.role]
        # Own session: a terminal's Ctrl-C reaches the supervisor, which stops us in order.
        self.process = subprocess.Popen(argv, env=self.env, start_new_session=True)
        self.started_at = time.monotonic()
        log.info("started %s (pid %d)", self.role, self.process.pid)

    def check(self, now: float) -> None:
        """Restart the process if it died, backing off when it keeps dying."""
        if self.process is None:
            if now >= self.next_start:
                self.start()
            return
        code = self.process.poll()
        if code is None:
            return
        lived = now - self.started_at
        self.restarts = 0 if lived > 60 else self.restarts + 1
        delay = min(MAX_RESTART_DELAY_S, 2.0 ** min(self.restarts, 5))
        log.error(
            "%s exited with %s after %.0fs; restarting in %.0fs", self.role, code, lived, delay
        )
        self.process, self.next_start = None, now + delay

    def stop(self, timeout_s: float) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0fs; killing it", self.role, timeout_s)
            process.kill()
            process.wait()


def start_embedded(settings: Settings, stack: ExitStack) -> dict[str, str]:
    """Start what is not configured; return the environment that points the children at it."""
    env: dict[str, str] = {}
    state = settings.state_dir.resolve()
    if settings.database.url is None:
        if settings.secret_key is None:
            # The children see a database URL: hand them the key of this state directory.
            env["AUTOSTAMP_SECRET_KEY"] = state_secret(state, SECRET_KEY_FILE)
            log.info("webhook secrets sealed with the key in %s", state / f"{SECRET_KEY_FILE}.key")
        postgres = EmbeddedPostgres(
            embedded_postgres_root(settings), settings.database.embedded_port
        )
        # Registered first: a Ctrl-C while the server starts must still stop it.
        stack.callback(postgres.stop)
        postgres.start()
        env["DATABASE_URL"] = postgres.url()
        log.info(
            "embedded PostgreSQL on 127.0.0.1:%d, data in %s", postgres.port, postgres.data_dir
        )
    if settings.kafka.bootstrap_servers is None:
        broker = EmbeddedBroker(settings.kafka.embedded_port, state / "logs" / "broker.log")
        stack.callback(broker.stop)
        broker.start()
        env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
        env |= {k: v for k, v in EMBEDDED_GROUP_TIMING.items() if k not in os.environ}
        if settings.programs_signing_key is None:
            # The children see a configured broker: hand them the key made for this one.
            env[PROGRAMS_KEY] = embedded_programs_key(settings)
            log.info("embedded default: program definitions signed with the key in %s", state)
        log.warning(
            "embedded Kafka-compatible broker on %s keeps its log IN MEMORY ONLY: topics and "
            "unconsumed messages are gone when it stops; the database keeps everything that "
            "matters",
            broker.bootstrap_servers,
        )
    if env:
        env |= embedded_webhook_networks(os.environ)
    return env


def embedded_webhook_networks(environ: Mapping[str, str]) -> dict[str, str]:
    """Under the embedded default, webhooks may reach this machine, unless configured."""
    if "AUTOSTAMP_WEBHOOKS_ALLOWED_NETWORKS" in environ:
        return {}
    log.warning(
        "embedded default: webhook endpoints on this machine (%s) allowed, plain http too; "
        "private networks stay refused",
        EMBEDDED_ALLOWED_NETWORKS,
    )
    return {"AUTOSTAMP_WEBHOOKS_ALLOWED_NETWORKS": EMBEDDED_ALLOWED_NETWORKS}


def prepare(settings: Settings, keyring: Keyring | None = None) -> None:
    """Migrate the database (sealing plaintext webhook secrets) and create the topics."""
    engine = sync_engine(settings)
    try:
        migrate.upgrade(engine, keyring=keyring or secret_keyring(settings))
    finally:
        engine.dispose()
    ensure_topics(kafka_client_config(settings), settings.kafka.topics)
    log.info("database migrated; topics ready: %s", settings.kafka.topics.transactions)


class _Stop(Exception):
    """Raised by the signal handler to leave the supervision loop."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def up(settings: Settings, roles: tuple[str, ...] = ROLES) -> None:
    """Run everything until SIGINT or SIGTERM, then stop it all in order."""
    programs_signing_keys(settings)  # no key for a configured broker: refuse before starting
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    with ExitStack() as stack:
        try:
            env = os.environ | start_embedded(settings, stack)
            os.environ.update(env)
            prepared = Settings()
            prepare(prepared)
            _announce(prepared)
            children = [Child(role, dict(env)) for role in roles]
            stack.callback(_stop_all, children)
            while True:
                now = time.monotonic()
                for child in children:
                    child.check(now)
                time.sleep(0.2)
        except _Stop as stop:
            log.info("received %s: stopping", stop)


def _stop_all(children: list[Child]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for child in reversed(children):
        child.stop(timeout_s=20)
    log.info("all processes stopped")


def _announce(settings: Settings) -> None:
    api = api_url(settings.api)
    log.info("publisher API on %s (health: %s/readyz, docs: %s/docs)", api, api, api)
    log.info("console: %s/console (`autostamp console sign-in-link` signs a browser in)", api)
    log.info("metrics: %s", ", ".join(f"{role} {url}" for role, url in metrics_urls(settings)))
    log.info("state directory: %s", settings.state_dir.resolve())


def metrics_urls(settings: Settings) -> list[tuple[str, str]]:
    """Where each process of `autostamp up` serves its Prometheus metrics."""
    metrics = settings.metrics
    urls = [("api", f"{api_url(settings.api)}/metrics")]
    for role, port in (("worker", metrics.worker_port), ("dispatcher", metrics.dispatcher_port)):
        if port:
            urls.append((role, f"http://{metrics.host}:{port}/metrics"))
    return urls
