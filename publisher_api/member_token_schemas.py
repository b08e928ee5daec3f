"""The bodies of the member token calls: mint a token for one member, revoke it."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, Field

from ledger import keys
from ledger.keys import IssuedKey
from publisher_api.schemas import MemberId, PublicTimestamp, StrictRequest, integral

MemberTokenId = Annotated[str, Field(pattern=r"^mtk_[A-Z2-7]+$", max_length=40)]
MIN_TTL_SECONDS = 60
MAX_TTL_SECONDS = int(keys.MAX_MEMBER_TOKEN_TTL.total_seconds())


class MemberTokenCreate(StrictRequest):
    """The member a token reads, and how long it lives."""

    member_id: MemberId
    ttl_seconds: Annotated[int, BeforeValidator(integral)] = Field(
        default=3600,
        ge=MIN_TTL_SECONDS,
        le=MAX_TTL_SECONDS,
        description="Seconds the token lives: 60 to 86400 (a day), an hour by default.",
    )


class MemberTokenPublic(BaseModel):
    """A token just minted: `token` is shown this once and stored only as a hash."""

    id: str = Field(examples=["mtk_4ZQ6KXN3V7TJ2M5RB8WD"])
    token: str = Field(description="`Authorization: Bearer <token>` for the member's app.")
    member_id: str
    created_at: PublicTimestamp
    expires_at: PublicTimestamp

    @classmethod
    def of(cls, issued: IssuedKey) -> MemberTokenPublic:
        token = issued.record
        assert token.member_id is not None and token.expires_at is not None
        return cls(
            id=token.id,
            token=issued.token,
            member_id=token.member_id,
            created_at=token.created_at,
            expires_at=token.expires_at,
        )


class MemberTokenRevoke(StrictRequest):
    """The member token to revoke."""

    id: MemberTokenId


class MemberTokenRevoked(BaseModel):
    """A revoked member token: refused by every API process within a second."""

    id: str
    member_id: str
    revoked_at: PublicTimestamp
