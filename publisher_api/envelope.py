"""The one middleware every HTTP request passes: metrics, body guard, rate-limit headers, 500s.

One layer instead of four: each ASGI middleware adds a call and a wrapped `send` to every
request, which a profile of the API showed as a few per cent of its CPU.

Per request, from the outside in:
- its time and status are counted by route template (`publisher_api.metrics`);
- any unexpected exception becomes a bare 500 JSON error, logged with its traceback;
- the caller's rate-limit headers go on every answer given after its key was checked;
- CORS: a browser's preflight of a call an enroll key makes is answered here, and an answer
  to an allowed origin carries `Access-Control-Allow-Origin` (`publisher_api.auth`);
- the body is checked and bounded when a route first reads it (`publisher_api.guards`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from publisher_api.auth import CORS_ORIGIN_STATE, RATE_LIMIT_STATE
from publisher_api.errors import error_response
from publisher_api.guards import BodyRule, GuardedBody
from publisher_api.metrics import ApiMetrics, route_label
from publisher_api.ratelimit import RateLimitDecision

log = logging.getLogger("publisher_api.errors")


class Envelope:
    """Wraps the application; see the module's docstring for what it does to each request."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: ApiMetrics,
        max_body_bytes: int,
        body_rules: Mapping[str, BodyRule] | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.default_body = BodyRule(max_body_bytes)
        # By path: the calls whose bodies are not the API's usual JSON of at most 64 KiB. A
        # rule for a path ending in no slash covers the paths below it too, unless they have
        # their own.
        self.body_rules = dict(body_rules or {})
        self.prefixes = sorted((p for p in self.body_rules), key=len, reverse=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and scope["path"] in BROWSER_CALLS:
            await _preflight(scope, send)
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
                extra = decision.raw_headers() if isinstance(decision, RateLimitDecision) else []
                origin = state.get(CORS_ORIGIN_STATE)
                if isinstance(origin, str):
                    extra += _cors(origin)
                if extra:
                    headers = list(message.get("headers", ()))
                    present = {name.lower() for name, _ in headers}
                    headers += [h for h in extra if h[0] not in present]
                    message["headers"] = headers
            await send(message)

        try:
            rule = self._rule(scope["path"])
            body = GuardedBody(scope, receive, rule)
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

    def _rule(self, path: str) -> BodyRule:
        rule = self.body_rules.get(path)
        if rule is not None:
            return rule
        for prefix in self.prefixes:
            if path.startswith(prefix + "/"):
                return self.body_rules[prefix]
        return self.default_body


BROWSER_CALLS = frozenset({"/publisher.v1/wallet.stamp-collection/create"})
"""The calls a browser may make, with an enroll key limited to its origins."""
_PREFLIGHT_MAX_AGE_S = 600


def _cors(origin: str) -> list[tuple[bytes, bytes]]:
    exposed = b"RateLimit, RateLimit-Policy, Retry-After, Idempotent-Replayed"
    return [
        (b"access-control-allow-origin", origin.encode()),
        (b"access-control-expose-headers", exposed),
        (b"vary", b"Origin"),
    ]


async def _preflight(scope: Scope, send: Send) -> None:
    """Let any origin ask; the real request is refused (403) from an origin the key refuses.

    A preflight carries no key, so it cannot know the key's origins; it grants nothing.
    """
    origin = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"origin"), None)
    headers = [(b"content-length", b"0")]
    if origin is not None:
        headers += [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-methods", b"POST"),
            (b"access-control-allow-headers", b"authorization, content-type, idempotency-key"),
            (b"access-control-max-age", str(_PREFLIGHT_MAX_AGE_S).encode()),
            (b"vary", b"Origin"),
        ]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
