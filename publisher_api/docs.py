"""What the OpenAPI document says about answers: the error shape per status, and the headers."""

from __future__ import annotations

from typing import Any

from publisher_api.errors import ErrorResponse

_ERRORS: dict[int, str] = {
    400: "The body is not valid JSON or breaks the request schema; the message names the field.",
    401: "The bearer key is missing, malformed, unknown, revoked or expired.",
    403: "The key's scope does not allow this call, or a browser used it from another origin.",
    404: "No such object, or not one publishers can see.",
    409: "The member is already enrolled (`details.stamp_collection_id` names the collection), "
    "or an adjustment would complete a cycle with no purchase to pay for.",
    413: "The body is larger than the configured limit (ingestion: or has too many items).",
    415: "The body is not sent as `application/json` (ingestion: or `application/x-ndjson`).",
    422: "The `Idempotency-Key` (or an adjustment's idempotency key) was used before with "
    "another body; send a new key.",
    429: "Too many requests for this key; retry after `Retry-After` seconds.",
    500: "An unexpected error; its cause is logged, never shown.",
    503: "The ledger database (or, for ingestion, the broker) is unavailable; retry after "
    "`Retry-After` seconds.",
}
# Every authenticated JSON call can answer these.
_ALWAYS = (400, 401, 403, 413, 415, 429, 500, 503)


def _header(description: str, kind: str = "string") -> dict[str, Any]:
    return {"description": description, "required": True, "schema": {"type": kind}}


RATE_LIMIT_HEADERS = {
    "RateLimit-Policy": _header('The key\'s policy, e.g. `"per-key";q=100;w=60`.'),
    "RateLimit": _header('Requests left now and seconds until full, e.g. `"per-key";r=19;t=12`.'),
    "X-RateLimit-Limit": _header("Requests allowed per minute.", "integer"),
    "X-RateLimit-Remaining": _header("Requests the key may make right now.", "integer"),
    "X-RateLimit-Reset": _header("Seconds until the key's bucket is full again.", "integer"),
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": _header("`Bearer`: how to authenticate.")},
    429: {
        **RATE_LIMIT_HEADERS,
        "Retry-After": _header("Seconds to wait before the next request.", "integer"),
    },
    503: {"Retry-After": _header("Seconds to wait before retrying.", "integer")},
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of an authenticated call: the usual ones plus `statuses`."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in sorted({*_ALWAYS, *statuses}):
        answer: dict[str, Any] = {"model": ErrorResponse, "description": _ERRORS[status]}
        if status in _HEADERS:
            answer["headers"] = _HEADERS[status]
        documented[status] = answer
    return documented


def ok_with_rate_limit() -> dict[int | str, dict[str, Any]]:
    return {200: {"headers": RATE_LIMIT_HEADERS}}
