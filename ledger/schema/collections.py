"""Collections, their stamps and rewards, the events and undos behind them, dead letters.

The constraints here hold the stamping invariants: one live collection per program and member,
one stamp per collection and purchase, one reward per collection and cycle, no negative count.
"""

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
from sqlalchemy.orm import Mapped, mapped_column

from ledger.schema.base import Base, created_now


class StampCollection(Base):
    """One member's enrollment in one program, with the count of the current cycle."""

    __tablename__ = "stamp_collections"
    __table_args__ = (
        # Unenrolling ends a collection, not its history: enrolling again starts a new one.
        Index(
            "uq_stamp_collections_program_member_live",
            "program_id",
            "member_id",
            unique=True,
            postgresql_where=text("unenrolled_at IS NULL"),
        ),
        CheckConstraint("unredeemed_purchases >= 0", name="count_not_negative"),
        CheckConstraint("owed_stamps >= 0", name="owed_not_negative"),
        CheckConstraint("cycle >= 1", name="cycle_positive"),
        Index("ix_stamp_collections_member_created", "member_id", "created_at", "id"),
        # The wallet list leaves ended collections out: it reads this one.
        Index(
            "ix_stamp_collections_member_live",
            "member_id",
            "created_at",
            "id",
            postgresql_where=text("unenrolled_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"))
    member_id: Mapped[str] = mapped_column(Text)
    unredeemed_purchases: Mapped[int] = mapped_column(Integer, server_default="0")
    # Stamps voided after their cycle was rewarded: the current cycle must make them good.
    owed_stamps: Mapped[int] = mapped_column(Integer, server_default="0")
    cycle: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = created_now()
    updated_at: Mapped[datetime] = created_now()
    # Set once by unenrolling (`ledger.unenrolling`): the collection stamps nothing after it.
    unenrolled_at: Mapped[datetime | None]


class Stamp(Base):
    """One purchase's stamp on one collection: live, capped or voided; never deleted."""

    __tablename__ = "stamps"
    __table_args__ = (
        # Purchase first: a batch finds the collections holding a purchase's stamps by it.
        UniqueConstraint("purchase_id", "collection_id", name="uq_stamps_collection_purchase"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("status IN ('live', 'capped', 'voided')", name="status_known"),
        CheckConstraint(
            "(status = 'voided') = (void_transaction_id IS NOT NULL)", name="void_has_its_undo"
        ),
        Index("ix_stamps_collection_created", "collection_id", "created_at", "id"),
        # The operations feed, newest first: stamps by when they were made, voids by when.
        Index("ix_stamps_created", "created_at", "id"),
        Index("ix_stamps_voided", "voided_at", "id", postgresql_where=text("status = 'voided'")),
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
    created_at: Mapped[datetime] = created_now()
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
        CheckConstraint(
            "payout_status IN ('triggered', 'paid', 'failed')", name="payout_status_known"
        ),
        Index(
            "ix_rewards_payout_pending",
            "created_at",
            postgresql_where=text("payout_published_at IS NULL"),
        ),
        Index("ix_rewards_created", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    collection_id: Mapped[str] = mapped_column(ForeignKey("stamp_collections.id"))
    cycle: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # The purchase the reward is for; none for a cycle completed by an edit with nothing left
    # to pay back (docs/stamping.md, "Cycles completed by an edit").
    transaction_id: Mapped[str | None] = mapped_column(Text)
    purchase_id: Mapped[str | None] = mapped_column(Text)
    # The threshold this reward consumed: the counters can be re-derived across edits of it.
    stamps_used: Mapped[int] = mapped_column(Integer)
    # The program version it was triggered under (`program_versions`): what it had to pay.
    # None for rewards made before migration 0019.
    program_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = created_now()
    payout_published_at: Mapped[datetime | None]
    # What the payout system reported (`ledger.payout_reports`): the attempt under way is
    # published with the same idempotency key, the reward id.
    payout_status: Mapped[str] = mapped_column(String(16), server_default="triggered")
    payout_attempt: Mapped[int] = mapped_column(Integer, server_default="1")
    payout_reason: Mapped[str | None] = mapped_column(Text)
    payout_reported_at: Mapped[datetime | None]


class StampAdjustment(Base):
    """Stamps added or taken away by support staff, with why and the key that did it."""

    __tablename__ = "stamp_adjustments"
    __table_args__ = (
        # A retry with the same idempotency key finds the first adjustment, whatever key sent it.
        UniqueConstraint(
            "collection_id", "idempotency_key", name="uq_stamp_adjustments_collection_key"
        ),
        CheckConstraint("delta <> 0 AND delta BETWEEN -100 AND 100", name="delta_bounded"),
        CheckConstraint("char_length(reason) BETWEEN 1 AND 500", name="reason_bounded"),
        Index("ix_stamp_adjustments_collection_created", "collection_id", "created_at", "id"),
        Index("ix_stamp_adjustments_created", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    collection_id: Mapped[str] = mapped_column(ForeignKey("stamp_collections.id"))
    delta: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(String(255))
    # SHA-256 of (delta, reason): the same key with another body is refused.
    request_sha256: Mapped[str] = mapped_column(String(64))
    # The API key that made it; None from the command line. Not a foreign key: the ledger
    # keeps the record of who adjusted whatever becomes of the key.
    api_key_id: Mapped[str | None] = mapped_column(String(40))
    # The collection's counters after it, so a retry answers what the first call answered.
    cycle: Mapped[int] = mapped_column(Integer)
    unredeemed_purchases: Mapped[int] = mapped_column(Integer)
    owed_stamps: Mapped[int] = mapped_column(Integer)
    rewards: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = created_now()


class _FromTheStream:
    """Where a remembered event was read, and when."""

    source_topic: Mapped[str] = mapped_column(Text)
    source_partition: Mapped[int] = mapped_column(Integer)
    source_offset: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = created_now()


class PurchaseEvent(_FromTheStream, Base):
    """A stamping event (auth, clearing) that qualified for a program: the permanent dedupe.

    It ties the event's id to its purchase, so an undo naming any event of a purchase finds
    the purchase. An event that qualified for no program leaves no row.
    """

    __tablename__ = "purchase_events"
    __table_args__ = (
        Index("ix_purchase_events_member_purchase", "member_id", "purchase_id"),
        CheckConstraint("type IN ('auth', 'clearing')", name="type_stamps"),
    )

    # Ids are the member's: two banks may reuse one for two members' events.
    member_id: Mapped[str] = mapped_column(Text, primary_key=True)
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    purchase_id: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    occurred_at: Mapped[datetime | None]


class Undo(_FromTheStream, Base):
    """Every refund or reversal ever received: it voids its purchase's stamps, whenever known."""

    __tablename__ = "undos"
    __table_args__ = (
        Index("ix_undos_member_original", "member_id", "original_id"),
        CheckConstraint("type IN ('refund', 'reversal')", name="type_undoes"),
    )

    member_id: Mapped[str] = mapped_column(Text, primary_key=True)
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    original_id: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(16))
    # Null only for undos recorded before amounts were kept: they count as full.
    amount: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))


class DeadLetter(Base):
    """A message that could not be applied: its bytes, its place in the topic, and why."""

    __tablename__ = "dead_letters"
    __table_args__ = (
        # The bytes are part of the place: a topic whose offsets start again (the embedded
        # broker after a restart) puts other messages where refused ones were.
        UniqueConstraint(
            "source_topic",
            "source_partition",
            "source_offset",
            "item",
            "sha256",
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
    created_at: Mapped[datetime] = created_now()
    published_at: Mapped[datetime | None]
    # Set when the dead-letter topic refused it for good: counted and logged, never retried.
    publish_error: Mapped[str | None] = mapped_column(Text)
    replayed_at: Mapped[datetime | None]


class ErasedMember(Base):
    """An erased member, by pseudonym only: their later events act on the renamed rows."""

    __tablename__ = "erased_members"

    pseudonym: Mapped[str] = mapped_column(Text, primary_key=True)
    erased_at: Mapped[datetime] = created_now()
