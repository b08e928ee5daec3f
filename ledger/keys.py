"""Publisher API keys: handed out as `ask_<prefix>_<secret>`, stored as prefix and SHA-256(secret).

Member tokens are keys too, of the `member` scope and bound to one member: short-lived,
minted by the publisher's backend for its mobile app (`create_member_token`), handed out as
`amt_<prefix>_<secret>`. They share the table, so the key cache, revocation and rate limits
apply to them unchanged.

The plaintext leaves this module once, from `create_key`, `rotate_key` or
`create_member_token`. The API trusts a key it checked here for at most a second
(`publisher_api.key_cache`), so a revoked, rotated or expired key is refused everywhere
within a second.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.errors import AuthError, NotFound
from ledger.ids import new_id
from ledger.request_signing import new_signing_secret, seal_signing_secret
from ledger.schema import ApiKey
from ledger.sealing import Keyring

KEY_TAG = "ask"
MEMBER_TOKEN_TAG = "amt"  # noqa: S105 (a tag, not a secret)
_TOKEN = re.compile(r"(ask|amt)_([0-9a-f]{12})_([a-z2-7]{32})")
# Recording every use would cost a write per request; a minute's precision is plenty.
LAST_USED_PRECISION = timedelta(minutes=1)


class Scope(StrEnum):
    """What a key may do: member < read < full (also enrolls members) < admin (operator calls).

    `member` reads one member's data only (the calls that admit it filter by its member).
    `enroll` stands apart: it only enrolls members, so it may sit in a browser page
    (with an origin allow-list); full and admin keys enroll too.
    `ingest` stands apart too: it only puts transactions on the stream (a bank's feed over
    HTTP); admin keys ingest as well, full keys do not (they sit in a publisher's backend,
    and an ingested transaction can make a stamp, that is money).
    `support` is for support staff: it reads what a read key reads, adjusts collections and
    reads the operations feed, and nothing else (no enrollment, no webhooks); full and admin
    keys may do what it does.
    """

    MEMBER = "member"
    READ = "read"
    FULL = "full"
    ADMIN = "admin"
    ENROLL = "enroll"
    INGEST = "ingest"
    SUPPORT = "support"

    def allows(self, needed: Scope) -> bool:
        if needed is Scope.ENROLL:
            return self in (Scope.ENROLL, Scope.FULL, Scope.ADMIN)
        if needed is Scope.INGEST:
            return self in (Scope.INGEST, Scope.ADMIN)
        if self in (Scope.ENROLL, Scope.INGEST):
            return False
        if needed is Scope.SUPPORT:
            return self in (Scope.SUPPORT, Scope.FULL, Scope.ADMIN)
        if self is Scope.SUPPORT:
            return needed in (Scope.MEMBER, Scope.READ)
        order = [Scope.MEMBER, Scope.READ, Scope.FULL, Scope.ADMIN]
        return order.index(self) >= order.index(needed)


_ORIGIN = re.compile(r"https?://[a-z0-9.-]+(:[0-9]{1,5})?")
MAX_ORIGINS = 20


def checked_origins(scope: Scope, origins: Sequence[str]) -> tuple[str, ...]:
    """Browser origins (`https://wallet.example.com`) an enroll key may be used from."""
    if origins and scope is not Scope.ENROLL:
        raise ValueError("only an enroll key takes allowed origins")
    if len(origins) > MAX_ORIGINS:
        raise ValueError(f"at most {MAX_ORIGINS} origins")
    wrong = [origin for origin in origins if not _ORIGIN.fullmatch(origin)]
    if wrong:
        raise ValueError(f"origins must look like https://wallet.example.com, not {wrong}")
    return tuple(dict.fromkeys(origins))


@dataclass(frozen=True)
class ApiKeyRecord:
    """A key as listed: never its secret."""

    id: str
    name: str
    prefix: str
    scope: Scope
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    allowed_origins: tuple[str, ...] = ()
    member_id: str | None = None
    """The one member a member token reads; None for every other key."""
    signing_secret: str | None = field(default=None, repr=False)
    """A signed ingest key's request-signing secret, sealed (`ledger.request_signing`)."""

    @property
    def signed(self) -> bool:
        """Whether requests made with this key must be signed."""
        return self.signing_secret is not None


@dataclass(frozen=True)
class IssuedKey:
    """A key just created or rotated, with the only copy of its plaintext token (and of its
    request-signing secret, for a signed ingest key)."""

    record: ApiKeyRecord
    token: str = field(repr=False)
    signing_secret: str | None = field(default=None, repr=False)


_COLUMNS = tuple(ApiKey.__table__.c[name] for name in ApiKeyRecord.__dataclass_fields__)


def _record(row: Row[*tuple[Any, ...]]) -> ApiKeyRecord:
    values = {name: getattr(row, name) for name in ApiKeyRecord.__dataclass_fields__}
    origins = tuple(values["allowed_origins"] or ())
    return ApiKeyRecord(**{**values, "scope": Scope(values["scope"]), "allowed_origins": origins})


def key_columns() -> tuple[Any, ...]:
    """The columns `key_record` reads, for a query that joins the keys table."""
    return _COLUMNS


def key_record(row: Any) -> ApiKeyRecord:
    """A key as listed, from a row of `key_columns`."""
    return _record(row)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_secret() -> tuple[str, str]:
    prefix = secrets.token_hex(6)
    secret = base64.b32encode(secrets.token_bytes(20)).decode().lower()
    return prefix, secret


def _check_name(name: str) -> str:
    if not name.strip() or len(name) > 200 or "\x00" in name:
        raise ValueError("a key's name must be 1 to 200 characters without NUL")
    return name


async def create_key(
    conn: AsyncConnection,
    name: str,
    scope: Scope,
    expires_at: datetime | None = None,
    allowed_origins: Sequence[str] = (),
    signing_keyring: Keyring | None = None,
) -> IssuedKey:
    """Issue a new key; the returned token is the only time its plaintext exists.

    `allowed_origins` (enroll keys only) are the browser origins it may be used from.
    With `signing_keyring` (ingest keys only), the key gets a request-signing secret, sealed
    with that keyring and returned this once: its requests must then be signed.
    """
    _check_name(name)
    if Scope(scope) is Scope.MEMBER:
        raise ValueError("a member token is minted for its member by create_member_token")
    if signing_keyring is not None and Scope(scope) is not Scope.INGEST:
        raise ValueError("only an ingest key takes a request-signing secret")
    origins = checked_origins(Scope(scope), allowed_origins)
    if expires_at is not None and expires_at.tzinfo is None:
        raise ValueError("expires_at must carry its UTC offset")
    signing = new_signing_secret() if signing_keyring is not None else None
    while True:
        prefix, secret = _new_secret()
        key_id = new_id("key")
        sealed = None
        if signing_keyring is not None and signing is not None:
            sealed = seal_signing_secret(signing_keyring, key_id, signing)
        stmt = (
            insert(ApiKey)
            .values(
                id=key_id,
                name=name,
                prefix=prefix,
                secret_sha256=_digest(secret),
                scope=Scope(scope).value,
                expires_at=expires_at,
                allowed_origins=list(origins),
                signing_secret=sealed,
            )
            .on_conflict_do_nothing()
            .returning(*_COLUMNS)
        )
        row = (await conn.execute(stmt)).one_or_none()
        if row is not None:  # else a random prefix collided: draw again
            return IssuedKey(_record(row), f"{KEY_TAG}_{prefix}_{secret}", signing)


async def list_keys(conn: AsyncConnection) -> list[ApiKeyRecord]:
    """Every key, revoked ones included, oldest first; member tokens are not listed."""
    stmt = select(*_COLUMNS).where(ApiKey.scope != Scope.MEMBER.value)
    rows = await conn.execute(stmt.order_by(ApiKey.created_at, ApiKey.id))
    return [_record(row) for row in rows]


async def revoke_key(conn: AsyncConnection, key_id: str, now: datetime) -> ApiKeyRecord:
    """Revoke a key at once; revoking it again keeps the first revocation time."""
    stmt = (
        update(ApiKey)
        .where(ApiKey.id == key_id)
        .values(revoked_at=func.coalesce(ApiKey.revoked_at, now))
        .returning(*_COLUMNS)
    )
    row = (await conn.execute(stmt)).one_or_none()
    if row is None:
        raise NotFound("API key", key_id)
    return _record(row)


async def rotate_key(conn: AsyncConnection, key_id: str) -> IssuedKey:
    """Give a live key a new secret; the old token stops working (within a second in the API).

    The key keeps its id, name, scope and expiry. A revoked key cannot be rotated, nor a
    member token (mint another).
    """
    prefix, secret = _new_secret()
    stmt = (
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            ApiKey.revoked_at.is_(None),
            ApiKey.scope != Scope.MEMBER.value,
        )
        .values(prefix=prefix, secret_sha256=_digest(secret))
        .returning(*_COLUMNS)
    )
    row = (await conn.execute(stmt)).one_or_none()
    if row is None:
        raise NotFound("live API key", key_id)
    return IssuedKey(_record(row), f"{KEY_TAG}_{prefix}_{secret}")


MAX_MEMBER_TOKEN_TTL = timedelta(days=1)
SWEPT_AFTER = timedelta(days=1)
"""How long a member token's row outlives its expiry before a mint deletes it."""
SWEEP_BATCH = 100
"""Rows one mint deletes at most: more than it adds, so the table stays bounded."""


async def create_member_token(
    conn: AsyncConnection, member_id: str, ttl: timedelta, now: datetime
) -> IssuedKey:
    """Mint a token that reads `member_id`'s data only, until `now + ttl`; shown this once.

    In the same transaction, deletes up to `SWEEP_BATCH` member tokens expired for more than
    `SWEPT_AFTER` (their rate buckets go with them), so minting keeps the table bounded.
    """
    if not timedelta(0) < ttl <= MAX_MEMBER_TOKEN_TTL:
        raise ValueError(f"a member token lives at most {MAX_MEMBER_TOKEN_TTL}, not {ttl}")
    await _sweep_member_tokens(conn, now - SWEPT_AFTER)
    while True:
        prefix, secret = _new_secret()
        stmt = (
            insert(ApiKey)
            .values(
                id=new_id("mtk"),
                name="member token",
                prefix=prefix,
                secret_sha256=_digest(secret),
                scope=Scope.MEMBER.value,
                created_at=now,
                expires_at=now + ttl,
                member_id=member_id,
            )
            .on_conflict_do_nothing()
            .returning(*_COLUMNS)
        )
        row = (await conn.execute(stmt)).one_or_none()
        if row is not None:  # else a random prefix collided: draw again
            return IssuedKey(_record(row), f"{MEMBER_TOKEN_TAG}_{prefix}_{secret}")


async def revoke_member_token(conn: AsyncConnection, token_id: str, now: datetime) -> ApiKeyRecord:
    """Revoke a member token (and nothing else: the publisher's backend calls this)."""
    stmt = (
        update(ApiKey)
        .where(ApiKey.id == token_id, ApiKey.scope == Scope.MEMBER.value)
        .values(revoked_at=func.coalesce(ApiKey.revoked_at, now))
        .returning(*_COLUMNS)
    )
    row = (await conn.execute(stmt)).one_or_none()
    if row is None:
        raise NotFound("member token", token_id)
    return _record(row)


async def _sweep_member_tokens(conn: AsyncConnection, expired_before: datetime) -> None:
    # SKIP LOCKED: two mints at once sweep different rows instead of waiting on each other.
    stale = (
        select(ApiKey.id)
        .where(ApiKey.scope == Scope.MEMBER.value, ApiKey.expires_at < expired_before)
        .order_by(ApiKey.expires_at)
        .limit(SWEEP_BATCH)
        .with_for_update(skip_locked=True)
    )
    await conn.execute(delete(ApiKey).where(ApiKey.id.in_(stale.scalar_subquery())))


async def authenticate(conn: AsyncConnection, token: str, now: datetime) -> ApiKeyRecord:
    """The live key `token` belongs to; raises AuthError for anything else."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise AuthError("the bearer token is not an autostamp API key")
    tag, prefix, secret = match.groups()
    stmt = select(*_COLUMNS, ApiKey.secret_sha256).where(ApiKey.prefix == prefix)
    row = (await conn.execute(stmt)).one_or_none()
    if row is None or not hmac.compare_digest(row.secret_sha256, _digest(secret)):
        raise AuthError("unknown API key")
    key = _record(row)
    if (tag == MEMBER_TOKEN_TAG) != (key.scope is Scope.MEMBER):
        raise AuthError("unknown API key")
    if key.revoked_at is not None:
        raise AuthError("the API key was revoked")
    if key.expires_at is not None and key.expires_at <= now:
        raise AuthError("the API key expired")
    await _touch(conn, key, now)
    return key


async def _touch(conn: AsyncConnection, key: ApiKeyRecord, now: datetime) -> None:
    stale = now - LAST_USED_PRECISION
    if key.last_used_at is not None and key.last_used_at > stale:
        return
    # The condition repeats in SQL so that concurrent requests write at most once.
    await conn.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key.id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= stale),
        )
        .values(last_used_at=now)
    )
