"""What one API application holds: its settings, database, probes, limiter and metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from autostamp.settings import ApiSettings
from publisher_api.metrics import ApiMetrics
from publisher_api.ratelimit import TokenBuckets


@dataclass(frozen=True)
class ApiState:
    """The collaborators of one application, built by `create_app` and never at import."""

    settings: ApiSettings
    engine: AsyncEngine
    broker_check: Callable[[], Awaitable[bool]]
    limiter: TokenBuckets
    metrics: ApiMetrics


def state_of(request: Request) -> ApiState:
    state = request.app.state.api
    assert isinstance(state, ApiState)
    return state


def _engine(request: Request) -> AsyncEngine:
    return state_of(request).engine


Database = Annotated[AsyncEngine, Depends(_engine)]
