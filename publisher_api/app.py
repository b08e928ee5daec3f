"""Builds the publisher API application; nothing is opened at import or in the constructor."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.middleware import Middleware

from ledger import rate_limits
from ledger.database import reachable
from ledger.ingestion import TransactionSink
from ledger.rate_limits import Lease
from ledger.statements import OnEngine, Statements
from ledger.webhook_endpoints import UrlCheck
from publisher_api import console
from publisher_api.auth import SCHEME, SECURITY_SCHEME, is_guarded
from publisher_api.config import ApiConfig
from publisher_api.envelope import Envelope
from publisher_api.errors import install_handlers
from publisher_api.failed_auth import FailedAuthentications
from publisher_api.guards import NDJSON, BodyRule, is_json_or_lines
from publisher_api.key_cache import KeyCache
from publisher_api.metrics import ApiMetrics
from publisher_api.probe_cache import CachedCheck
from publisher_api.ratelimit import SharedBuckets
from publisher_api.routes import (
    adjustments,
    collections,
    ingest,
    member_tokens,
    members,
    probes,
    programs,
    rewards,
    webhook_endpoints,
)
from publisher_api.routes import operations as operation_feed
from publisher_api.state import ApiState, BrokerCheck

ROUTERS = (
    programs.router,
    collections.router,
    adjustments.router,
    rewards.router,
    operation_feed.router,
    member_tokens.router,
    members.router,
    probes.router,
    webhook_endpoints.router,
    ingest.router,
)
TITLE = "autostamp publisher API"
DESCRIPTION = """\
The K42 publisher calls (loyalty programs, stamp collections) plus stamp history, rewards and
their payouts, member tokens, webhook endpoints and operations probes, and
`ingest.v1/transactions`, which puts card transactions on the stream for banks without Kafka.

* Every call but the probes is a `POST` with a JSON body (`Content-Type: application/json`,
  else 415; larger than the configured limit, else 413) and `Authorization: Bearer <key>`.
* Unknown fields in a body are refused with 400 naming the field, never ignored.
* Every error answers `{"error": {"code", "message"}}`, with `details` where a field is at
  fault (`field`, `problems` with what each accepts) or a resource is named (the
  `stamp_collection_id` of a repeated enrollment).
* `wallet.stamp-collection/create` takes an `Idempotency-Key` header: a retry within 24 hours
  gets the first answer.
* Programs are visible (listed, readable, open to enrollment) while active or paused and
  before the end of their active window; archived or ended ones answer 404.
* Lists page by an opaque `cursor` in `(created_at, id)` order; rows added while paging
  are neither lost nor repeated.
* Rate limits are a token bucket per key, shared by every API process and replica, reported
  in `RateLimit`, `RateLimit-Policy` and `X-RateLimit-*` headers (resets in delta-seconds);
  429 carries `Retry-After`.
* A revoked, rotated or expired key is refused within a second.
* Scopes: `member` < `read` < `full` < `admin`; `enroll` only enrolls. A member token
  (`member-token/create`, minted by the publisher's backend) reads its own member's
  collections, stamps and rewards, and the programs: another member's collection or reward
  is a 404, another `member_id` in a body a 403. Webhook calls need `admin`. `ingest`
  only ingests (so do `admin` keys), and may be made to sign its requests.
* `ingest.v1/transactions` takes a JSON array or JSON lines (`application/x-ndjson`) up to
  its own size and item limits (4 MiB and 5,000 by default).
"""


def create_app(
    config: ApiConfig,
    engine: AsyncEngine,
    broker_check: BrokerCheck,
    check_url: UrlCheck,
    *,
    statements: Statements | None = None,
    clock: Callable[[], float] = time.time,
    routers: Sequence[APIRouter] = (),
    ingest_sink: TransactionSink | None = None,
    on_shutdown: Sequence[Callable[[], None]] = (),
) -> FastAPI:
    """The application, serving `engine`'s ledger; `clock` drives the rate limits and key cache.

    `statements` runs the reads of one statement and the rate-limit leases, each a transaction
    of its own (`ledger.statements.PooledStatements`); `engine` runs them by default.
    `clock` gives seconds since the epoch: the rate limit's buckets are shared by processes.
    `check_url` refuses webhook endpoint URLs the dispatcher would not call. `routers` are
    included after ours and get the same error handling, guards and metrics.
    `ingest_sink` is the transactions topic ingestion produces to (without it, ingestion
    answers 503); `on_shutdown` runs when the server stops (closing its producer, say).
    """
    metrics = ApiMetrics()
    ingest_body = BodyRule(
        config.ingest.max_body_bytes,
        is_json_or_lines,
        f"send a JSON array as application/json, or JSON lines as {NDJSON}",
    )
    body_rules = {ingest.PATH: ingest_body}
    if config.console.enabled:
        body_rules |= console.body_rules(config.max_body_bytes, config.console.backtest_max_bytes)
    envelope = Middleware(
        Envelope, metrics=metrics, max_body_bytes=config.max_body_bytes, body_rules=body_rules
    )
    app = _application([envelope], [*ROUTERS, *routers], on_shutdown)
    if config.console.enabled:
        console.install(app)
    single = statements or OnEngine(engine)

    async def lease(key_id: str, want: int, returned: int, at: float) -> Lease:
        return await rate_limits.lease(
            single, key_id, limiter.shape, want=want, returned=returned, at=at
        )

    limiter = SharedBuckets(config.rate_limit_per_minute, config.rate_limit_burst, lease, clock)
    app.state.api = ApiState(
        config=config,
        engine=engine,
        statements=single,
        database_ready=CachedCheck("database", partial(reachable, engine), clock),
        broker_ready=CachedCheck("broker", broker_check, clock),
        check_url=check_url,
        keys=KeyCache(engine, config.key_cache_s, clock),
        limiter=limiter,
        failed_authentications=FailedAuthentications(config.failed_auth_per_minute, clock),
        metrics=metrics,
        ingest_sink=ingest_sink,
    )
    return app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document, built without a database (for `autostamp openapi`)."""
    return _application(middleware=[], routers=ROUTERS).openapi()


def _application(
    middleware: Sequence[Middleware],
    routers: Sequence[APIRouter],
    on_shutdown: Sequence[Callable[[], None]] = (),
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        for close in on_shutdown:
            close()

    app = FastAPI(
        title=TITLE,
        description=DESCRIPTION,
        version="1",
        generate_unique_id_function=_operation_id,
        middleware=middleware,
        lifespan=lifespan,
    )
    for router in routers:
        app.include_router(router)
    install_handlers(app)
    app.openapi = lambda: _openapi(app, routers)  # type: ignore[method-assign]
    return app


def _operation_id(route: APIRoute) -> str:
    return route.name


def _openapi(app: FastAPI, routers: Sequence[APIRouter]) -> dict[str, Any]:
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        app.openapi_schema = _with_bearer_security(routers, _without_422(document))
    return app.openapi_schema


def _with_bearer_security(routers: Sequence[APIRouter], document: dict[str, Any]) -> dict[str, Any]:
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SCHEME] = SECURITY_SCHEME
    routes = [route for router in routers for route in router.routes]
    for route in routes:
        if isinstance(route, APIRoute) and is_guarded(route):
            for method in route.methods or ():
                document["paths"][route.path_format][method.lower()]["security"] = [{SCHEME: []}]
    return document


def _without_422(document: dict[str, Any]) -> dict[str, Any]:
    # Invalid bodies answer 400 with our error shape, not FastAPI's default 422 (a 422 of our
    # own, with our error shape, stays).
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            answers = operation.get("responses", {})
            if "HTTPValidationError" in str(answers.get("422", "")):
                answers.pop("422")
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return document
