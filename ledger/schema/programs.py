"""Programs as synced from their definitions, every version applied, and the revision every
change of them bumps."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ledger.schema.base import Base, Json, created_now


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
    created_at: Mapped[datetime] = created_now()
    updated_at: Mapped[datetime] = created_now()


class ProgramVersion(Base):
    """A version of a program as it was applied; kept for good, whatever came after it.

    A reward is paid, and a stamp counted, under the version in force at that moment:
    `reconcile` judges them by it (`ledger.reconcile`).
    """

    __tablename__ = "program_versions"

    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # The programs row's definition columns (`ledger.catalog.DEFINITION_COLUMNS`), as JSON.
    definition: Mapped[Json]
    applied_at: Mapped[datetime] = created_now()


class ProgramRevision(Base):
    """One row: bumped by every change of the programs, under a lock, so revisions commit in order.

    A worker that has loaded every program up to revision N and reads N here has seen them all.
    """

    __tablename__ = "program_revision"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, server_default="0")
