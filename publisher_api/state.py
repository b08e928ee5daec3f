"""What one API application holds: its config, database, probes, key cache, limiter, metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.ingestion import TransactionSink
from ledger.statements import Statements
from ledger.webhook_endpoints import UrlCheck
from publisher_api.config import ApiConfig
from publisher_api.failed_auth import FailedAuthentications
from publisher_api.key_cache import KeyCache
from publisher_api.metrics import ApiMetrics
from publisher_api.probe_cache import CachedCheck
from publisher_api.ratelimit import SharedBuckets

BrokerCheck = Callable[[], Awaitable[bool]]


@dataclass(frozen=True)
class ApiState:
    """The collaborators of one application, built by `create_app` and never at import."""

    config: ApiConfig
    engine: AsyncEngine
    statements: Statements
    """The same database, each statement a transaction of its own: reads and rate leases."""
    database_ready: CachedCheck
    broker_ready: CachedCheck
    check_url: UrlCheck
    keys: KeyCache
    limiter: SharedBuckets
    failed_authentications: FailedAuthentications
    metrics: ApiMetrics
    ingest_sink: TransactionSink | None = None
    """The transactions topic, for ingestion; None where no broker is given (503)."""


def state_of(request: Request) -> ApiState:
    state = request.app.state.api
    assert isinstance(state, ApiState)
    return state
