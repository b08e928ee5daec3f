"""Refuses a request body that is not JSON (415) or too large (413) before anything parses it.

A call may have a rule of its own (`BodyRule`): ingestion takes larger bodies, and JSON lines.

The check runs when a route first asks for the body, that is after routing (so an unknown path
is still a 404 and a wrong method a 405) and before the route's key is checked. The body is
read here, counting bytes as they arrive, so a chunked body without Content-Length or one
longer than its Content-Length claims costs at most the limit in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope

NDJSON = "application/x-ndjson"
_JSON_ONLY = "send the body as JSON with Content-Type: application/json"


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json(content_type: str | None) -> bool:
    kind = media_type(content_type)
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def is_json_or_lines(content_type: str | None) -> bool:
    return is_json(content_type) or media_type(content_type) == NDJSON


@dataclass(frozen=True)
class BodyRule:
    """How large a call's body may be, which media types it takes, and what a refusal says."""

    limit: int
    accepts: Callable[[str | None], bool] = is_json
    refusal: str = _JSON_ONLY


class GuardedBody:
    """A `receive` whose first read of the body is checked and bounded."""

    def __init__(self, scope: Scope, receive: Receive, rule: BodyRule) -> None:
        self.headers = Headers(scope=scope)
        self.receive = receive
        self.rule = rule
        self.limit = rule.limit
        self.delivered = False

    async def __call__(self) -> Message:
        if self.delivered:
            return await self.receive()
        self.delivered = True
        self._check_headers()
        return {"type": "http.request", "body": await self._read(), "more_body": False}

    def _check_headers(self) -> None:
        length = self.headers.get("content-length")
        if length is not None and not length.strip().isdigit():
            raise HTTPException(400, "Content-Length is not a number")
        if length is not None and int(length) > self.limit:
            raise self._too_large()
        has_body = (length is not None and int(length) > 0) or ("transfer-encoding" in self.headers)
        if has_body and not self.rule.accepts(self.headers.get("content-type")):
            raise HTTPException(415, self.rule.refusal)

    async def _read(self) -> bytes:
        # HTTPException passes through FastAPI's body parsing unchanged, unlike other errors.
        body = bytearray()
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise HTTPException(400, "the client went away while sending the body")
            body += message.get("body", b"")
            if len(body) > self.limit:
                raise self._too_large()
            if not message.get("more_body", False):
                return bytes(body)

    def _too_large(self) -> HTTPException:
        return HTTPException(413, f"the body exceeds {self.limit} bytes")
