"""What routes declare they need: the database, a caller of some scope, the URL policy, the time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.idempotency import MAX_KEY_CHARS
from ledger.keys import Scope
from ledger.sealing import Keyring
from ledger.webhook_endpoints import UrlCheck
from publisher_api.auth import Caller, require
from publisher_api.state import state_of


async def _engine(request: Request) -> AsyncEngine:
    return state_of(request).engine


async def _url_check(request: Request) -> UrlCheck:
    return state_of(request).check_url


async def _secret_grace(request: Request) -> timedelta:
    return state_of(request).config.webhook_secret_grace


async def _secret_keyring(request: Request) -> Keyring:
    return state_of(request).config.webhook_keyring


async def _request_time() -> datetime:
    return datetime.now(UTC)


# Dependencies are coroutines: FastAPI runs a plain function in a worker thread.
Database = Annotated[AsyncEngine, Depends(_engine)]
MemberReader = Annotated[Caller, Depends(require(Scope.MEMBER))]
"""A member token or a read, full or admin key. The route must read through
`caller.member_id` / `caller.member(...)`, so that a member token reads its own member's
data only."""
Writer = Annotated[Caller, Depends(require(Scope.FULL))]
Enroller = Annotated[Caller, Depends(require(Scope.ENROLL))]
"""An enroll, full or admin key: enrolling is the one call a browser-safe key may make."""
Ingester = Annotated[Caller, Depends(require(Scope.INGEST))]
"""An ingest or admin key: ingest keys make no other call."""
Admin = Annotated[Caller, Depends(require(Scope.ADMIN))]
Supporter = Annotated[Caller, Depends(require(Scope.SUPPORT))]
"""A support, full or admin key: adjustments and the operations feed."""
UrlPolicy = Annotated[UrlCheck, Depends(_url_check)]
"""Refuses (raises `UnsafeUrl`) a webhook URL the dispatcher would not call."""
SecretGrace = Annotated[timedelta, Depends(_secret_grace)]


async def _held_while_disabled(request: Request) -> timedelta:
    return state_of(request).config.webhook_held_while_disabled


HeldWhileDisabled = Annotated[timedelta, Depends(_held_while_disabled)]
"""How old a missed event may be and still go out when its endpoint is enabled again."""
"""How long a rotated webhook secret keeps signing beside the new one."""
Now = Annotated[datetime, Depends(_request_time)]
SecretKeyring = Annotated[Keyring, Depends(_secret_keyring)]
"""The keys of AUTOSTAMP_SECRET_KEY: they seal webhook secrets, and key members' pseudonyms."""

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_KEY_CHARS,
        pattern=r"^[\x21-\x7e]+$",
        description=(
            "Any unique string (a UUID, say): a retry with the same key and body within 24 "
            "hours gets the first answer; with another body, 422."
        ),
    ),
]
