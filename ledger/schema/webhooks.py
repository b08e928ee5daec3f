"""Webhook endpoints, the outbox of messages, and each delivery with its attempts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from ledger.schema.base import Base, created_now


class WebhookEndpoint(Base):
    """A URL that receives signed events of the types it subscribed to."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        # Secrets are sealed (`ledger.sealing`), never plaintext; a deleted endpoint keeps none.
        CheckConstraint("secret LIKE 'sealed.%'", name="secret_sealed"),
        CheckConstraint("previous_secret LIKE 'sealed.%'", name="previous_secret_sealed"),
        CheckConstraint("(secret IS NULL) = (deleted_at IS NOT NULL)", name="secret_while_live"),
        CheckConstraint(
            "previous_secret IS NULL OR deleted_at IS NULL", name="no_previous_secret_deleted"
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, server_default="")
    event_types: Mapped[list[str]] = mapped_column(JSONB)
    # Sealed text; NULL once the endpoint is deleted.
    secret: Mapped[str | None] = mapped_column(Text)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]
    # Why it was disabled: "410 Gone", "failing since ...", or by request.
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    # When its current run of failed attempts began; cleared by any 2xx.
    failing_since: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = created_now()
    updated_at: Mapped[datetime] = created_now()


class WebhookMessage(Base):
    """An event written to the outbox in the transaction that caused it."""

    __tablename__ = "webhook_messages"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    # The exact bytes that are signed and sent: JSONB would not give them back byte for byte.
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = created_now()


class WebhookDelivery(Base):
    """The delivery of one message to one endpoint, retried until delivered or dead."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint(
            "message_id", "endpoint_id", name="uq_webhook_deliveries_message_endpoint"
        ),
        CheckConstraint(
            "status IN ('pending', 'delivered', 'dead', 'endpoint_disabled')",
            name="status_known",
        ),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at", "id"),
        Index(
            "ix_webhook_deliveries_dead",
            "updated_at",
            postgresql_where=text("status = 'dead'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("webhook_messages.id"))
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id"))
    status: Mapped[str] = mapped_column(String(24), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = created_now()
    created_at: Mapped[datetime] = created_now()
    updated_at: Mapped[datetime] = created_now()


class WebhookAttempt(Base):
    """One HTTP attempt of a delivery, kept for the record."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "attempted_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"))
    attempted_at: Mapped[datetime]
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    response_snippet: Mapped[str | None] = mapped_column(Text)
