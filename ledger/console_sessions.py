"""Console sign-ins: a session token kept in an HTTP-only cookie, never the admin key itself.

Signing in with an admin key opens a session of `SESSION_LIFETIME`; only the SHA-256 of its
token is stored, beside the key it belongs to and that key's digest at sign-in. A session is
live while it has not expired and its key is still the same live admin key: revoking,
rotating or expiring the key ends every session opened with it.

A one-time ticket (`issue_ticket`, for `autostamp demo` and `autostamp console sign-in-link`)
opens a session without typing the key: it lives `TICKET_LIFETIME`, and redeeming it deletes
it in the statement that reads it, so it opens one session at most. A ticket holds the key's
digest as it was when the ticket was made, as a session does: a link printed before the key
was rotated, revoked or expired opens nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.errors import AuthError, ScopeError
from ledger.keys import ApiKeyRecord, Scope, authenticate, key_columns, key_record
from ledger.schema import ApiKey, ConsoleSession

SESSION_LIFETIME = timedelta(hours=8)
TICKET_LIFETIME = timedelta(minutes=15)
SESSION_TAG = "acs"
TICKET_TAG = "act"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token(tag: str) -> str:
    return f"{tag}_{secrets.token_urlsafe(32)}"


def csrf_token(session_token: str) -> str:
    """The token a session's forms carry: derived from the session, so nothing stores it."""
    return hmac.new(session_token.encode(), b"console-form", hashlib.sha256).hexdigest()


async def sign_in(conn: AsyncConnection, api_key: str, now: datetime) -> str:
    """A new session token for a live admin key; AuthError or ScopeError otherwise."""
    key = await authenticate(conn, api_key, now)
    if not key.scope.allows(Scope.ADMIN):
        raise ScopeError(Scope.ADMIN.value, key.scope.value)
    return await _open(conn, "session", key.id, now + SESSION_LIFETIME, now)


async def issue_ticket(conn: AsyncConnection, key_id: str, now: datetime) -> str:
    """A one-time sign-in ticket for the admin key `key_id`, good for `TICKET_LIFETIME`."""
    row = (await conn.execute(select(*key_columns()).where(ApiKey.id == key_id))).one_or_none()
    if row is None:
        raise AuthError("unknown API key")
    key = key_record(row)
    if key.revoked_at is not None:
        raise AuthError("the API key was revoked")
    if key.expires_at is not None and key.expires_at <= now:
        raise AuthError("the API key expired")
    if key.scope is not Scope.ADMIN:
        raise ScopeError(Scope.ADMIN.value, key.scope.value)
    return await _open(conn, "ticket", key_id, now + TICKET_LIFETIME, now)


async def redeem_ticket(conn: AsyncConnection, ticket: str, now: datetime) -> str:
    """A session token in exchange for a ticket, which is gone after; AuthError if none."""
    taken = (
        await conn.execute(
            delete(ConsoleSession)
            .where(
                ConsoleSession.token_sha256 == _digest(ticket),
                ConsoleSession.kind == "ticket",
            )
            .returning(ConsoleSession.key_id, ConsoleSession.key_sha256, ConsoleSession.expires_at)
        )
    ).one_or_none()
    if taken is None or taken.expires_at <= now:
        raise AuthError("this sign-in link was used already or has expired")
    key = await _key_with_digest(conn, taken.key_id, taken.key_sha256, now)
    if key is None:
        raise AuthError("the key of this sign-in link is no longer the live admin key it was")
    until = now + SESSION_LIFETIME
    return await _open(conn, "session", key.id, until, now, key_sha256=taken.key_sha256)


async def session_key(conn: AsyncConnection, token: str, now: datetime) -> ApiKeyRecord | None:
    """The admin key behind a live session token, or None."""
    stmt = (
        select(*key_columns())
        .join(ConsoleSession, ConsoleSession.key_id == ApiKey.id)
        .where(
            ConsoleSession.token_sha256 == _digest(token),
            ConsoleSession.kind == "session",
            ConsoleSession.expires_at > now,
            ConsoleSession.key_sha256 == ApiKey.secret_sha256,
        )
    )
    return _live_admin((await conn.execute(stmt)).one_or_none(), now)


async def _key_with_digest(
    conn: AsyncConnection, key_id: str, key_sha256: str, now: datetime
) -> ApiKeyRecord | None:
    """The live admin key `key_id`, if its secret is still the one digested as `key_sha256`."""
    stmt = select(*key_columns()).where(ApiKey.id == key_id, ApiKey.secret_sha256 == key_sha256)
    return _live_admin((await conn.execute(stmt)).one_or_none(), now)


def _live_admin(row: object, now: datetime) -> ApiKeyRecord | None:
    if row is None:
        return None
    key = key_record(row)
    live = key.revoked_at is None and (key.expires_at is None or key.expires_at > now)
    return key if live and key.scope is Scope.ADMIN else None


async def sign_out(conn: AsyncConnection, token: str) -> None:
    await conn.execute(delete(ConsoleSession).where(ConsoleSession.token_sha256 == _digest(token)))


async def _open(
    conn: AsyncConnection,
    kind: str,
    key_id: str,
    until: datetime,
    now: datetime,
    key_sha256: str | None = None,
) -> str:
    """A new session or ticket of `key_id`, bound to `key_sha256` (else the key's digest now)."""
    await conn.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
    token = _new_token(SESSION_TAG if kind == "session" else TICKET_TAG)
    current = select(ApiKey.secret_sha256).where(ApiKey.id == key_id).scalar_subquery()
    await conn.execute(
        insert(ConsoleSession).values(
            token_sha256=_digest(token),
            kind=kind,
            key_id=key_id,
            key_sha256=current if key_sha256 is None else key_sha256,
            expires_at=until,
        )
    )
    return token
