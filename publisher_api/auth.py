"""Bearer API keys: who is calling, whether their scope allows the call, and their rate limit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request
from fastapi.routing import APIRoute

from ledger import keys
from ledger.errors import AuthError, OriginRefused, OtherMemberRefused, ScopeError
from ledger.keys import ApiKeyRecord
from ledger.statements import Statements
from publisher_api.client_address import client_address
from publisher_api.ratelimit import RateLimited
from publisher_api.state import state_of

RATE_LIMIT_STATE = "rate_limit"
"""Where a request's rate-limit decision waits for its answer's headers (`request.state`)."""
CORS_ORIGIN_STATE = "cors_origin"
"""The allowed browser origin a request came from, for its answer's CORS headers."""

SCHEME = "HTTPBearer"
SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "ask_<prefix>_<secret> or amt_<prefix>_<secret>",
    "description": (
        "An API key from `autostamp keys create` (`ask_...`), or a member token from "
        "`member-token/create` (`amt_...`), which reads its own member's data only. "
        "Scopes: member < read < full < admin; enroll only enrolls."
    ),
}
_GUARDS: set[Callable[..., Awaitable[Caller]]] = set()


@dataclass(frozen=True)
class Caller:
    """The key a request came with, and where its reads of one statement run."""

    key: ApiKeyRecord
    reads: Statements

    @property
    def member_id(self) -> str | None:
        """The member a member token is bound to: pass it to the ledger to read only theirs."""
        return self.key.member_id

    def member(self, asked: str | None) -> str | None:
        """The member a call reads: the one `asked` for, or a member token's own.

        A member token that asks for another member is refused (403).
        """
        own = self.key.member_id
        if own is None:
            return asked
        if asked is not None and asked != own:
            raise OtherMemberRefused()
        return own


def require(needed: keys.Scope | str) -> Callable[..., Awaitable[Caller]]:
    """A dependency admitting a live key whose scope covers `needed`, within its rate limit.

    Checked in that order: 429 for an address that failed too often (before any lookup), 401
    for a missing or dead key, 429 over the key's limit, 403 out of scope.
    The header is read here rather than by a FastAPI security dependency, which would cost a
    level of dependency solving on every request; `is_guarded` tells the OpenAPI document.
    """
    scope = keys.Scope(needed)

    async def authorized(request: Request) -> Caller:
        state = state_of(request)
        address = client_address(request)
        state.failed_authentications.check(address)
        try:
            key = await state.keys.authenticate(_bearer_token(request.headers.get("authorization")))
        except AuthError:
            state.failed_authentications.failed(address)
            raise
        decision = await state.limiter.take(key.id)
        request.scope["state"][RATE_LIMIT_STATE] = decision
        if not decision.allowed:
            raise RateLimited(decision)
        if not key.scope.allows(scope):
            raise ScopeError(scope.value, key.scope.value)
        if key.allowed_origins:
            _check_origin(request, key.allowed_origins)
        return Caller(key, state.statements)

    _GUARDS.add(authorized)
    return authorized


def is_guarded(route: APIRoute) -> bool:
    """Whether the route asks for an API key (through `require`)."""
    return any(dependency.call in _GUARDS for dependency in route.dependant.dependencies)


def _check_origin(request: Request, allowed: tuple[str, ...]) -> None:
    """A browser's request must come from an allowed origin; one without Origin is no browser's.

    Answers from an allowed origin carry the CORS headers that let its page read them.
    """
    origin = request.headers.get("origin")
    if origin is None:
        return
    if origin not in allowed:
        raise OriginRefused(f"this key may not be used from {origin}")
    request.scope["state"][CORS_ORIGIN_STATE] = origin


def _bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("send an API key as `Authorization: Bearer <key>`")
    return token.strip()
