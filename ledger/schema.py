"""The ledger's PostgreSQL tables; the constraints here hold the stamping invariants."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Json = dict[str, Any]


class Base(DeclarativeBase):
    """Declarative base with stable constraint names, so migrations can name them."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        Json: JSONB,
        datetime: DateTime(timezone=True),
    }


def _now() -> Any:
    return mapped_column(server_default=func.now())


class Program(Base):
    """A loyalty program as synced from its definition."""

    __tablename__ = "programs"
    __table_args__ = (
        CheckConstraint("qualifying_threshold >= 1", name="threshold_positive"),
        CheckConstraint("status IN ('active', 'paused', 'archived')", name="status_known"),
        CheckConstraint(
            "active_from IS NULL OR active_until IS NULL OR active_from < active_until",
            name="window_ordered",
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    qualifying_threshold: Mapped[int] = mapped_column(Integer)
    reward_config: Mapped[Json]
    display_content: Mapped[Json]
    rules: Mapped[Json]
    status: Mapped[str] = mapped_column(String(16), server_default="active")
    active_from: Mapped[datetime | None]
    active_until: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    # The ledger-wide program revision that last changed this row (see ProgramRevision).
    revision: Mapped[int] = mapped_column(BigInteger, server_default="0", index=True)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class ProgramRevision(Base):
    """One row: bumped by every change of the programs, under a lock, so revisions commit in order.

    A worker that has loaded every program up to revision N and reads N here has seen them all.
    """

    __tablename__ = "program_revision"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, server_default="0")


class ApiKey(Base):
    """A publisher API key; only its prefix and SHA-256 digest are stored."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint("scope IN ('read', 'full', 'admin')", name="scope_known"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class StampCollection(Base):
    """One member's enrollment in one program, with the count of the current cycle."""

    __tablename__ = "stamp_collections"
    __table_args__ = (
        UniqueConstraint("program_id", "member_id", name="uq_stamp_collections_program_member"),
        CheckConstraint("unredeemed_purchases >= 0", name="count_not_negative"),
        CheckConstraint("owed_stamps >= 0", name="owed_not_negative"),
        CheckConstraint("cycle >= 1", name="cycle_positive"),
        Index("ix_stamp_collections_member_created", "member_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"))
    member_id: Mapped[str] = mapped_column(Text)
    unredeemed_purchases: Mapped[int] = mapped_column(Integer, server_default="0")
    # Stamps voided after their cycle was rewarded: the current cycle must make them good.
    owed_stamps: Mapped[int] = mapped_column(Integer, server_default="0")
    cycle: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class Stamp(Base):
    """One purchase's stamp on one collection: live, capped or voided; never deleted."""

    __tablename__ = "stamps"
    __table_args__ = (
        UniqueConstraint("collection_id", "purchase_id", name="uq_stamps_collection_purchase"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("status IN ('live', 'capped', 'voided')", name="status_known"),
        CheckConstraint(
            "(status = 'voided') = (void_transaction_id IS NOT NULL)", name="void_has_its_undo"
        ),
        Index("ix_stamps_collection_created", "collection_id", "created_at", "id"),
        Index("ix_stamps_collection_transaction", "collection_id", "transaction_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    collection_id: Mapped[str] = mapped_column(ForeignKey("stamp_collections.id"))
    purchase_id: Mapped[str] = mapped_column(Text)
    transaction_id: Mapped[str] = mapped_column(Text)
    cycle: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    merchant_id: Mapped[str] = mapped_column(Text)
    merchant_name: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(8), server_default="live")
    created_at: Mapped[datetime] = _now()
    voided_at: Mapped[datetime | None]
    void_transaction_id: Mapped[str | None] = mapped_column(Text)


class Reward(Base):
    """A reward for one completed cycle of one collection; the row is the payout's outbox."""

    __tablename__ = "rewards"
    __table_args__ = (
        UniqueConstraint("collection_id", "cycle", name="uq_rewards_collection_cycle"),
        CheckConstraint("type IN ('refund', 'fixed-reward')", name="type_known"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        CheckConstraint("stamps_used >= 1", name="stamps_used_positive"),
        Index(
            "ix_rewards_payout_pending",
            "created_at",
            postgresql_where=text("payout_published_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    collection_id: Mapped[str] = mapped_column(ForeignKey("stamp_collections.id"))
    cycle: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    transaction_id: Mapped[str] = mapped_column(Text)
    purchase_id: Mapped[str] = mapped_column(Text)
    # The threshold this reward consumed: the counters can be re-derived across edits of it.
    stamps_used: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = _now()
    payout_published_at: Mapped[datetime | None]


class WebhookEndpoint(Base):
    """A URL that receives signed events of the types it subscribed to."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, server_default="")
    event_types: Mapped[list[str]] = mapped_column(JSONB)
    secret: Mapped[str] = mapped_column(Text)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class WebhookMessage(Base):
    """An event written to the outbox in the transaction that caused it."""

    __tablename__ = "webhook_messages"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    # The exact bytes that are signed and sent: JSONB would not give them back byte for byte.
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()


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
    next_attempt_at: Mapped[datetime] = _now()
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


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


class PurchaseEvent(Base):
    """A stamping event (auth, clearing) that qualified for a program: the permanent dedupe.

    It ties the event's id to its purchase, so an undo naming any event of a purchase finds
    the purchase. An event that qualified for no program leaves no row.
    """

    __tablename__ = "purchase_events"
    __table_args__ = (
        Index("ix_purchase_events_member_purchase", "member_id", "purchase_id"),
        CheckConstraint("type IN ('auth', 'clearing')", name="type_stamps"),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    purchase_id: Mapped[str] = mapped_column(Text)
    member_id: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    occurred_at: Mapped[datetime | None]
    source_topic: Mapped[str] = mapped_column(Text)
    source_partition: Mapped[int] = mapped_column(Integer)
    source_offset: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = _now()


class Undo(Base):
    """Every refund or reversal ever received: it voids its purchase's stamps, whenever known."""

    __tablename__ = "undos"
    __table_args__ = (
        Index("ix_undos_member_original", "member_id", "original_id"),
        CheckConstraint("type IN ('refund', 'reversal')", name="type_undoes"),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    original_id: Mapped[str] = mapped_column(Text)
    member_id: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(16))
    # Null only for undos recorded before amounts were kept: they count as full.
    amount: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    source_topic: Mapped[str] = mapped_column(Text)
    source_partition: Mapped[int] = mapped_column(Integer)
    source_offset: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = _now()


class DeadLetter(Base):
    """A message that could not be applied: its bytes, its place in the topic, and why."""

    __tablename__ = "dead_letters"
    __table_args__ = (
        UniqueConstraint(
            "source_topic",
            "source_partition",
            "source_offset",
            "item",
            name="uq_dead_letters_source",
        ),
        Index(
            "ix_dead_letters_unpublished",
            "id",
            postgresql_where=text("published_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    source_topic: Mapped[str] = mapped_column(Text)
    source_partition: Mapped[int] = mapped_column(Integer)
    source_offset: Mapped[int] = mapped_column(BigInteger)
    # Position inside a batch message (a JSON array); -1 for the whole message.
    item: Mapped[int] = mapped_column(Integer, server_default="-1")
    key: Mapped[bytes | None]
    # The message's bytes, whole up to `ledger.dead_letters.KEPT_BYTES`; `size` and `sha256`
    # are those of the whole message.
    value: Mapped[bytes]
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    published_at: Mapped[datetime | None]
    # Set when the dead-letter topic refused it for good: counted and logged, never retried.
    publish_error: Mapped[str | None] = mapped_column(Text)
    replayed_at: Mapped[datetime | None]
