"""the console: sign-in sessions and tickets, reconcile results, the workers' flow and lag

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("key_sha256", sa.String(64), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('session', 'ticket')", name="ck_console_sessions_kind_known"),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
            name="fk_console_sessions_key_id_api_keys",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_sha256", name="pk_console_sessions"),
    )
    op.create_index("ix_console_sessions_expires", "console_sessions", ["expires_at"])
    op.create_index("ix_console_sessions_key_id", "console_sessions", ["key_id"])
    op.create_table(
        "reconciliations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "finished_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("collections", sa.Integer(), nullable=False),
        sa.Column("rewards", sa.Integer(), nullable=False),
        sa.Column("difference_count", sa.Integer(), nullable=False),
        sa.Column("differences", postgresql.JSONB(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reconciliations"),
    )
    op.create_table(
        "flow_minutes",
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("worker", sa.String(80), nullable=False),
        *(
            sa.Column(name, sa.Integer(), server_default="0", nullable=False)
            for name in (
                "applied",
                "repeated",
                "unmatched",
                "dead_lettered",
                "stamps",
                "voids",
                "rewards",
            )
        ),
        sa.PrimaryKeyConstraint("minute", "worker", name="pk_flow_minutes"),
    )
    op.create_index("ix_flow_minutes_minute", "flow_minutes", ["minute"])
    op.create_table(
        "consumer_lags",
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("lag", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(80), nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("partition", name="pk_consumer_lags"),
    )


def downgrade() -> None:
    op.drop_table("consumer_lags")
    op.drop_table("flow_minutes")
    op.drop_table("reconciliations")
    op.drop_table("console_sessions")
