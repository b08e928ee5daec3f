"""Every failure answers `{"error": {"code", "message"}}` with its status; never a stack trace.

Where a field of the request is at fault, or the failure names something the caller can use,
`error.details` says so: `field` and `problems` (each with its `field`, `problem` and, when
the field takes one of a set of values, `expected`) for a 400, `stamp_collection_id` for an
enrollment that already exists.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from ledger.errors import (
    AdjustmentRefused,
    AlreadyExists,
    AuthError,
    AutostampError,
    BrokerError,
    DuplicateEnrollment,
    NotFound,
    OriginRefused,
    OtherMemberRefused,
    ScopeError,
    StorageError,
    UnsafeUrl,
)
from ledger.idempotency import IdempotencyKeyReused
from publisher_api.failed_auth import TooManyFailedAuthentications
from publisher_api.ratelimit import RateLimited

log = logging.getLogger(__name__)

ErrorCode = Literal[
    "invalid_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "already_enrolled",
    "idempotency_key_reused",
    "conflict",
    "payload_too_large",
    "unsupported_media_type",
    "rate_limited",
    "internal",
    "unavailable",
]


class ErrorDetail(BaseModel):
    """What went wrong: a stable code for programs and a sentence for people."""

    code: ErrorCode
    message: str
    details: dict[str, Any] | None = Field(
        default=None,
        description="Machine-readable context: the failing field, or the existing resource.",
        examples=[{"field": "member_id", "problems": [{"field": "member_id", "problem": "..."}]}],
    )


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


class InvalidRequest(AutostampError, ValueError):
    """A request the schema allowed but that still makes no sense (a foreign cursor, say)."""


_CODES: dict[int, ErrorCode] = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "idempotency_key_reused",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}

# Most specific first: DuplicateEnrollment is an AlreadyExists.
_KNOWN: tuple[tuple[type[AutostampError], int, ErrorCode], ...] = (
    (DuplicateEnrollment, 409, "already_enrolled"),
    (IdempotencyKeyReused, 422, "idempotency_key_reused"),
    (AlreadyExists, 409, "conflict"),
    (AdjustmentRefused, 409, "conflict"),
    (NotFound, 404, "not_found"),
    (AuthError, 401, "unauthorized"),
    (ScopeError, 403, "forbidden"),
    (OriginRefused, 403, "forbidden"),
    (OtherMemberRefused, 403, "forbidden"),
    (UnsafeUrl, 400, "invalid_request"),
    (InvalidRequest, 400, "invalid_request"),
    (RateLimited, 429, "rate_limited"),
    (TooManyFailedAuthentications, 429, "rate_limited"),
    (StorageError, 503, "unavailable"),
    (BrokerError, 503, "unavailable"),
)

RETRY_STORAGE_S = 5


def error_response(
    status: int,
    message: str,
    code: ErrorCode | None = None,
    headers: Mapping[str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> JSONResponse:
    detail = ErrorDetail(code=code or _CODES.get(status, "internal"), message=message)
    body = ErrorResponse(error=detail.model_copy(update={"details": details}))
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def _details(exc: AutostampError) -> dict[str, Any] | None:
    if isinstance(exc, DuplicateEnrollment):
        return {
            "stamp_collection_id": exc.collection_id,
            "loyalty_program_id": exc.program_id,
            "member_id": exc.member_id,
        }
    if isinstance(exc, UnsafeUrl):
        return {"field": "url"}
    return None


def _headers(exc: AutostampError) -> dict[str, str]:
    if isinstance(exc, AuthError):
        return {"WWW-Authenticate": 'Bearer realm="autostamp"'}
    if isinstance(exc, RateLimited):
        return {**exc.decision.headers(), "Retry-After": str(exc.decision.retry_after_s)}
    if isinstance(exc, TooManyFailedAuthentications):
        return {"Retry-After": str(exc.retry_after_s)}
    if isinstance(exc, StorageError | BrokerError):
        return {"Retry-After": str(RETRY_STORAGE_S)}
    return {}


async def _known(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AutostampError)
    known = [(status, code) for kind, status, code in _KNOWN if isinstance(exc, kind)]
    if not known:
        log.error("%s %s: %r", request.method, request.url.path, exc, exc_info=exc)
        return error_response(500, "internal error; it has been logged")
    status, code = known[0]
    message = str(exc)
    if isinstance(exc, StorageError):
        # The driver's text may name hosts or SQL: it goes to the log, not to the caller.
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        message = "the ledger database is unavailable; retry shortly"
    if isinstance(exc, BrokerError):
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        message = "the broker did not acknowledge the transactions; none was accepted: retry"
    return error_response(status, message, code, _headers(exc), _details(exc))


def _field(loc: Sequence[Any]) -> str:
    parts = [str(part) for part in loc[1:]] if loc and loc[0] == "body" else list(map(str, loc))
    return ".".join(parts) or "body"


def _problem(error: dict[str, Any]) -> str:
    kind = error.get("type")
    if kind == "json_invalid":
        return f"body: not valid JSON ({error.get('ctx', {}).get('error', 'parse error')})"
    if kind == "extra_forbidden":
        return f"{_field(error['loc'])}: is not a field of this request"
    if kind == "missing":
        return f"{_field(error['loc'])}: is required"
    message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    return f"{_field(error['loc'])}: {message}"


def _described(error: dict[str, Any]) -> dict[str, Any]:
    field, _, problem = _problem(error).partition(": ")
    described: dict[str, Any] = {"field": field, "problem": problem}
    expected = error.get("ctx", {}).get("expected")
    if expected is not None:
        described["expected"] = str(expected)
    return described


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [dict(error) for error in exc.errors()]
    problems = [_problem(error) for error in errors]
    shown = "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
    described = [_described(error) for error in errors[:20]]
    details = {"field": described[0]["field"], "problems": described} if described else None
    return error_response(400, f"invalid request: {shown}", details=details)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), headers=exc.headers)


def install_handlers(app: FastAPI) -> None:
    """Map the ledger's error tree, validation and routing errors to JSON errors."""
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(AutostampError, _known)
