"""The one middleware every HTTP request passes: metrics, body guard, rate-limit headers, 500s.

One layer instead of four: each ASGI middleware adds a call and a wrapped `send` to every
request, which a profile of the API showed as a few per cent of its CPU.

Per request, from the outside in:
- its time and status are counted by route template (`publisher_api.metrics`);
- any unexpected exception becomes a bare 500 JSON error, logged with its traceback;
- the caller's rate-limit headers go on every answer given after its key was checked;
- the body is checked and bounded when a route first reads it (`publisher_api.guards`).
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from publisher_api.auth import RATE_LIMIT_STATE
from publisher_api.errors import error_response
from publisher_api.guards import GuardedBody
from publisher_api.metrics import ApiMetrics, route_label
from publisher_api.ratelimit import RateLimitDecision

log = logging.getLogger("publisher_api.errors")


class Envelope:
    """Wraps the application; see the module's docstring for what it does to each request."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        # Shared with `request.state`, so the key check's decision is visible here.
        state = scope.setdefault("state", {})
        status = 500
        started = False

        async def wrapped_send(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                decision = state.get(RATE_LIMIT_STATE)
                if isinstance(decision, RateLimitDecision):
                    headers = list(message.get("headers", ()))
                    present = {name.lower() for name, _ in headers}
                    headers += [h for h in decision.raw_headers() if h[0] not in present]
                    message["headers"] = headers
            await send(message)

        try:
            body = GuardedBody(scope, receive, self.max_body_bytes)
            await self.app(scope, body, wrapped_send)
        except Exception:
            log.exception("unhandled error in %s %s", scope["method"], scope["path"])
            if started:
                raise  # the status has gone out: only closing the connection is left
            await error_response(500, "internal error; it has been logged")(
                scope, receive, wrapped_send
            )
        finally:
            elapsed = time.perf_counter() - began
            self.metrics.observe(scope["method"], route_label(scope), status, elapsed)
