"""The console's sign-ins, and the results of `reconcile` it shows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from ledger.schema.base import Base, Json, created_now


class ConsoleSession(Base):
    """A signed-in console, or a one-time sign-in ticket waiting to become one.

    Only the SHA-256 of its token is stored. It belongs to an admin key, and holds that key's
    digest as it was at sign-in: a key rotated, revoked or expired since ends the session.
    """

    __tablename__ = "console_sessions"
    __table_args__ = (
        CheckConstraint("kind IN ('session', 'ticket')", name="kind_known"),
        Index("ix_console_sessions_expires", "expires_at"),
    )

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    key_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("api_keys.id", ondelete="CASCADE"), index=True
    )
    key_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = created_now()
    expires_at: Mapped[datetime]


class ReconciliationRun(Base):
    """One run of `reconcile`: what it looked at and every difference it found."""

    __tablename__ = "reconciliations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime] = created_now()
    collections: Mapped[int] = mapped_column(Integer)
    rewards: Mapped[int] = mapped_column(Integer)
    difference_count: Mapped[int] = mapped_column(Integer)
    # The first differences, as `Reconciliation.as_json` gives them (bounded).
    differences: Mapped[list[Json]] = mapped_column(JSONB)


class FlowMinute(Base):
    """What one worker applied in one minute, as its metrics counted it (`ledger.flow`)."""

    __tablename__ = "flow_minutes"
    __table_args__ = (Index("ix_flow_minutes_minute", "minute"),)

    minute: Mapped[datetime] = mapped_column(primary_key=True)
    worker: Mapped[str] = mapped_column(String(80), primary_key=True)
    applied: Mapped[int] = mapped_column(Integer, server_default="0")
    repeated: Mapped[int] = mapped_column(Integer, server_default="0")
    unmatched: Mapped[int] = mapped_column(Integer, server_default="0")
    dead_lettered: Mapped[int] = mapped_column(Integer, server_default="0")
    stamps: Mapped[int] = mapped_column(Integer, server_default="0")
    voids: Mapped[int] = mapped_column(Integer, server_default="0")
    rewards: Mapped[int] = mapped_column(Integer, server_default="0")


class ConsumerLag(Base):
    """The last lag a worker measured on a partition of the transactions topic."""

    __tablename__ = "consumer_lags"

    partition: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    lag: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(80))
    measured_at: Mapped[datetime]
