"""The body and answer of `POST /ingest.v1/transactions`, and how a body becomes items."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from fastapi import HTTPException
from pydantic import BaseModel, Field

from ledger.ingestion import ItemOutcome
from publisher_api.errors import InvalidRequest
from publisher_api.guards import NDJSON, media_type


def items_of(body: bytes, content_type: str | None, max_items: int) -> list[bytes]:
    """Each item's bytes: the elements of a JSON array, or the non-blank lines of JSON lines.

    A body that is not a JSON array (nor JSON lines) is a 400; more than `max_items`, a 413.
    A line that is not valid JSON is an item, refused with its reason like any other.
    """
    if media_type(content_type) == NDJSON:
        items = [line.strip() for line in body.split(b"\n") if line.strip()]
    else:
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"the body is not valid JSON: {exc}") from exc
        if not isinstance(decoded, list):
            raise InvalidRequest(
                "send a JSON array of transactions, or JSON lines as application/x-ndjson"
            )
        items = [orjson.dumps(item) for item in decoded]
    if len(items) > max_items:
        raise HTTPException(413, f"at most {max_items} transactions per request")
    return items


class IngestItem(BaseModel):
    """One item of the request, in its order: accepted or refused."""

    index: int = Field(description="The item's position in the request, from 0.")
    id: str | None = Field(
        default=None, description="The transaction's id, when the item names one."
    )
    status: Literal["accepted", "refused"]
    reason: str | None = Field(
        default=None,
        description="Why it was refused: the reason a dead letter of it would carry.",
    )
    seen_before: bool | None = Field(
        default=None,
        description=(
            "Accepted items: whether this id was accepted through this call before (or "
            "earlier in this request). Resending changes nothing in the ledger."
        ),
    )

    @classmethod
    def of(cls, outcome: ItemOutcome) -> IngestItem:
        if outcome.accepted:
            return cls(
                index=outcome.index,
                id=outcome.id,
                status="accepted",
                seen_before=outcome.seen_before,
            )
        return cls(index=outcome.index, id=outcome.id, status="refused", reason=outcome.reason)


class IngestResult(BaseModel):
    """What became of each item, once the broker acknowledged the accepted ones."""

    accepted: int
    refused: int
    items: list[IngestItem]

    @classmethod
    def of(cls, outcomes: list[ItemOutcome]) -> IngestResult:
        accepted = sum(1 for outcome in outcomes if outcome.accepted)
        items = [IngestItem.of(outcome) for outcome in outcomes]
        return cls(accepted=accepted, refused=len(outcomes) - accepted, items=items)


_TRANSACTION_EXAMPLE: dict[str, Any] = {
    "id": "tx_123",
    "type": "clearing",
    "member_id": "member_42",
    "amount": 450,
    "currency": "GBP",
    "merchant": {"id": "mer_bean", "name": "Bean There", "mcc": "5814"},
    "card": {"id": "card_1", "scheme": "visa"},
    "occurred_at": "2026-03-02T09:15:00Z",
}
REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        # JSON lines are described, not listed as a second media type: any body is valid
        # JSON lines (a bad line is a refused item), which no schema can say.
        "description": (
            "Card transactions (docs/transactions.md): a JSON array, or the same as JSON "
            "lines with `Content-Type: application/x-ndjson` (one transaction per line; a "
            "line that is not JSON is a refused item). Each item is judged alone."
        ),
        "content": {
            "application/json": {
                # Any item: each is judged alone, and one that is no transaction is refused
                # in the answer, not by the whole request.
                "schema": {"type": "array", "items": {}},
                "example": [_TRANSACTION_EXAMPLE],
            },
        },
    }
}
