"""Who is signed in to the console: the session cookie, its check, and the forms' CSRF token.

The cookie holds a session token (`ledger.console_sessions`), never the admin key: it is
HTTP-only (no script reads it), `SameSite=Strict` (no other site's page sends it) and, unless
configured off, `Secure`. Every form that changes something carries the session's CSRF token
as well, and a request without it is refused.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from ledger import console_sessions
from ledger.console_sessions import SESSION_LIFETIME
from ledger.keys import ApiKeyRecord
from publisher_api.state import state_of

COOKIE = "autostamp_console"
PATH = "/console"


class SignInRequired(Exception):
    """No live session: the browser is sent to the sign-in page, then back to `then`."""

    def __init__(self, then: str) -> None:
        super().__init__(then)
        self.then = then


class FormRefused(Exception):
    """A form without the session's CSRF token: refused with 403."""


@dataclass(frozen=True)
class Operator:
    """A signed-in operator: their admin key, and the token their forms must carry."""

    key: ApiKeyRecord
    csrf: str


async def _operator(request: Request) -> Operator:
    token = request.cookies.get(COOKIE)
    if token:
        async with state_of(request).engine.connect() as conn:
            key = await console_sessions.session_key(conn, token, datetime.now(UTC))
        if key is not None:
            return Operator(key, console_sessions.csrf_token(token))
    raise SignInRequired(request.url.path)


SignedIn = Annotated[Operator, Depends(_operator)]


async def checked_form(request: Request, operator: Operator) -> FormData:
    """The form of a POST, once its CSRF token is the session's."""
    form = await request.form()
    sent = form.get("csrf")
    if not isinstance(sent, str) or not hmac.compare_digest(sent, operator.csrf):
        raise FormRefused()
    return form


def sign_in_location(then: str) -> str:
    return f"{PATH}/sign-in?then={quote(then, safe='/')}"


def safe_then(then: str | None) -> str:
    """Where to go after signing in: a console page, never another site."""
    if then and then.startswith(f"{PATH}/") and not then.startswith("//") and "\\" not in then:
        return then
    return f"{PATH}/flow"


def set_session_cookie(response: Response, token: str, secure: bool) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path=PATH,
        secure=secure,
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(response: Response, secure: bool) -> None:
    response.delete_cookie(COOKIE, path=PATH, secure=secure, httponly=True, samesite="strict")
