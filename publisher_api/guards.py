"""Refuses a request body that is not JSON (415) or too large (413) before anything parses it.

The check runs when a route first asks for the body, that is after routing (so an unknown path
is still a 404 and a wrong method a 405) and before the route's key is checked. The body is
read here, counting bytes as they arrive, so a chunked body without Content-Length or one
longer than its Content-Length claims costs at most the limit in memory.
"""

from __future__ import annotations

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope


def is_json(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


class GuardedBody:
    """A `receive` whose first read of the body is checked and bounded."""

    def __init__(self, scope: Scope, receive: Receive, limit: int) -> None:
        self.headers = Headers(scope=scope)
        self.receive = receive
        self.limit = limit
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
        if has_body and not is_json(self.headers.get("content-type")):
            raise HTTPException(415, "send the body as JSON with Content-Type: application/json")

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
