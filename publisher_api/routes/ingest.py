"""`ingest.v1/transactions`: a bank without Kafka puts card transactions on the stream."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request

from ledger import ingestion
from ledger.errors import BrokerUnavailable, RequestSignatureRefused
from publisher_api.client_address import client_address
from publisher_api.deps import Ingester, Now
from publisher_api.docs import ok_with_rate_limit, responses
from publisher_api.ingest_schemas import REQUEST_BODY, IngestResult, items_of
from publisher_api.state import state_of

router = APIRouter(prefix="/ingest.v1", tags=["ingestion"])
PATH = "/ingest.v1/transactions"

Timestamp = Annotated[
    str | None,
    Header(alias="X-Timestamp", description="Signed keys: unix seconds when signed."),
]
Signature = Annotated[
    str | None,
    Header(
        alias="X-Signature",
        description="Signed keys: `v1=<hex HMAC-SHA256 of '<X-Timestamp>.<raw body>'>`.",
    ),
]


@router.post(
    "/transactions",
    summary="Put card transactions on the stream",
    response_model=IngestResult,
    response_model_exclude_none=True,
    responses={**ok_with_rate_limit(), **responses()},
    openapi_extra=REQUEST_BODY,
)
async def ingest_transactions(
    request: Request,
    caller: Ingester,
    now: Now,
    timestamp: Timestamp = None,
    signature: Signature = None,
) -> IngestResult:
    """Needs an `ingest` or `admin` key. Each item is judged as the worker judges a message;
    the valid ones go on the transactions topic keyed by member, and the answer comes once the
    broker acknowledged them (else 503, and none is accepted). A signed key's requests must
    carry `X-Timestamp` and `X-Signature`, each signature used once (else 401)."""
    state = state_of(request)
    body = await request.body()
    if caller.key.signed:
        keyring = state.config.ingest.keyring
        headers = (timestamp, signature)
        try:
            await ingestion.check_signature(state.engine, keyring, caller.key, headers, body, now)
        except RequestSignatureRefused:
            # A bad signature is a failed authentication: it spends the address's budget.
            state.failed_authentications.failed(client_address(request))
            raise
    items = items_of(body, request.headers.get("content-type"), state.config.ingest.max_items)
    if state.ingest_sink is None:
        raise BrokerUnavailable("this API has no broker to ingest to")
    outcomes = await ingestion.ingest(state.engine, state.ingest_sink, items)
    return IngestResult.of(outcomes)
