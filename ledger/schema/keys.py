"""Publisher API keys: only their prefix and SHA-256 digest are stored."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from ledger.schema.base import Base, created_now


class ApiKey(Base):
    """A publisher API key or member token; only its prefix and SHA-256 digest are stored."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(
            "scope IN ('member', 'read', 'full', 'admin', 'enroll', 'ingest', 'support')",
            name="scope_known",
        ),
        # Only an ingest key signs its requests, and its secret is stored sealed.
        CheckConstraint(
            "signing_secret IS NULL OR (scope = 'ingest' AND signing_secret LIKE 'sealed.%')",
            name="signing_secret_sealed",
        ),
        # A member token names its member and always expires; no other key names a member.
        CheckConstraint(
            "(scope = 'member') = (member_id IS NOT NULL)"
            " AND (scope <> 'member' OR expires_at IS NOT NULL)",
            name="member_token_shape",
        ),
        # For the sweep of long-expired member tokens when one is minted.
        Index(
            "ix_api_keys_member_token_expiry",
            "expires_at",
            postgresql_where=text("scope = 'member'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = created_now()
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    # Browser origins an enroll key may be used from (CORS); empty: no browser check.
    allowed_origins: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    # The one member whose data a member token reads.
    member_id: Mapped[str | None] = mapped_column(Text)
    # A signed ingest key's request-signing secret, sealed (`ledger.request_signing`).
    signing_secret: Mapped[str | None] = mapped_column(Text)


class ApiRateBucket(Base):
    """A key's token bucket, shared by every API process and replica (`ledger.rate_limits`)."""

    __tablename__ = "api_rate_buckets"

    key_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    tokens: Mapped[float] = mapped_column(Double)
    # Seconds since the epoch on the clock of the process that last leased: a float, so the
    # refill is plain arithmetic in the one statement that leases.
    updated_at: Mapped[float] = mapped_column(Double)
    last_grant: Mapped[int] = mapped_column(Integer)


class IdempotentRequest(Base):
    """The first answer to a request sent with an `Idempotency-Key` (`ledger.idempotency`)."""

    __tablename__ = "idempotent_requests"

    api_key_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    idempotency_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(String(64))
    answer: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_now()


class IngestedTransaction(Base):
    """A transaction id first accepted by `POST /ingest.v1/transactions`, and when.

    Only tells a caller that it sent an id before: the ledger's own dedupe is what keeps a
    resent transaction from stamping twice.
    """

    __tablename__ = "ingested_transactions"

    transaction_id: Mapped[str] = mapped_column(Text, primary_key=True)
    first_seen_at: Mapped[datetime] = created_now()


class IngestSignature(Base):
    """A request signature already used, kept until its timestamp leaves the window."""

    __tablename__ = "ingest_signatures"
    __table_args__ = (Index("ix_ingest_signatures_signed_at", "signed_at"),)

    signature: Mapped[str] = mapped_column(String(64), primary_key=True)
    signed_at: Mapped[datetime]
