"""Bearer API keys: who is calling, whether their scope allows the call, and their rate limit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger import keys
from ledger.database import transaction
from ledger.errors import AuthError, ScopeError
from ledger.keys import ApiKeyRecord
from publisher_api.ratelimit import RateLimitDecision, RateLimited
from publisher_api.state import state_of

_RATE_LIMIT = "rate_limit"

bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="ask_<prefix>_<secret>",
    description="An API key from `autostamp keys create`. Scopes: read < full < admin.",
)

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def require(needed: keys.Scope | str) -> Callable[..., Awaitable[ApiKeyRecord]]:
    """A dependency admitting a live key whose scope covers `needed`, within its rate limit.

    Checked in that order: 401 for a missing or dead key, 429 over the limit, 403 out of scope.
    """
    scope = keys.Scope(needed)

    async def authorized(request: Request, credentials: Credentials) -> ApiKeyRecord:
        if credentials is None:
            raise AuthError("send an API key as `Authorization: Bearer <key>`")
        state = state_of(request)
        async with transaction(state.engine) as conn:
            key = await keys.authenticate(conn, credentials.credentials, datetime.now(UTC))
        decision = state.limiter.take(key.id)
        setattr(request.state, _RATE_LIMIT, decision)
        if not decision.allowed:
            raise RateLimited(decision)
        if not key.scope.allows(scope):
            raise ScopeError(scope.value, key.scope.value)
        return key

    return authorized


class RateLimitHeaders:
    """Adds the caller's rate-limit headers to every answer given after its key was checked."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Shared with `request.state` below, so the dependency's decision is visible here.
        state = scope.setdefault("state", {})

        async def with_headers(message: Message) -> None:
            decision = state.get(_RATE_LIMIT)
            if message["type"] == "http.response.start" and isinstance(decision, RateLimitDecision):
                headers = MutableHeaders(scope=message)
                for name, value in decision.headers().items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)
