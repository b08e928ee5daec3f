"""A local receiver for people integrating: verifies each webhook with a secret and shows it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any

from webhooks.signing import WebhookVerificationError, secret_key, verify

AsgiScope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[AsgiScope, Receive, Send], Awaitable[None]]

MAX_RECEIVED_BYTES = 1024 * 1024


async def _body(receive: Receive) -> bytes | None:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if len(body) > MAX_RECEIVED_BYTES:
            return None
        if not message.get("more_body", False):
            return body


async def _answer(send: Send, status: int, text: str = "") -> None:
    payload = text.encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def describe_webhook(headers: dict[str, str], body: bytes) -> str:
    """What arrived, for a terminal: the id, the attempt's time, the payload indented."""
    try:
        shown = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        shown = body.decode(errors="replace")
    return f"{headers.get('webhook-id')} at {headers.get('webhook-timestamp')}\n{shown}"


def listener_app(secret: str, show: Callable[[str], None], clock: Callable[[], datetime]) -> App:
    """An ASGI app: 204 for a webhook that verifies under `secret`, 401 (and why) otherwise."""
    secret_key(secret)  # an unreadable secret fails now, not on the first webhook

    async def app(scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] != "POST":
            await _answer(send, 405, "webhooks are POSTed\n")
            return
        body = await _body(receive)
        if body is None:
            await _answer(send, 413, "body too large\n")
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            verify(headers, body, secret, clock())
        except WebhookVerificationError as exc:
            show(f"REJECTED {type(exc).__name__}: {exc}")
            await _answer(send, 401, f"{exc}\n")
            return
        show(describe_webhook(headers, body))
        await _answer(send, 204)

    return app
