"""Liveness, readiness and metrics: no key needed, for orchestrators and scrapers."""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from publisher_api.state import state_of

router = APIRouter(tags=["operations"])
log = logging.getLogger(__name__)

Health = Literal["ok", "unreachable"]


class Liveness(BaseModel):
    """The process answers."""

    status: Literal["ok"]


class Readiness(BaseModel):
    """Whether each store the product needs answers."""

    database: Health
    broker: Health


@router.get("/healthz", summary="Liveness", response_model=Liveness)
async def healthz() -> Liveness:
    """200 while the process serves requests; touches nothing else."""
    return Liveness(status="ok")


@router.get(
    "/readyz",
    summary="Readiness",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The database or the broker is down."}},
)
async def readyz(request: Request) -> JSONResponse:
    """200 only when both the database and the broker answer, else 503.

    Each answer is reused for a few seconds (`publisher_api.probe_cache`): an outage shows
    within that long, and a flood of probes costs no more than one.
    """
    state = state_of(request)
    report = Readiness(
        database=_health(await state.database_ready()),
        broker=_health(await state.broker_ready()),
    )
    healthy = report.database == report.broker == "ok"
    return JSONResponse(report.model_dump(), status_code=200 if healthy else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """Request counts and latencies by route template and status, in Prometheus text format."""
    return Response(state_of(request).metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def _health(ok: bool) -> Health:
    return "ok" if ok else "unreachable"
