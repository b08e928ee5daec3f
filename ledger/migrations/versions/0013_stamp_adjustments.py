"""stamp adjustments by support staff, the support scope, and the operations feed's indexes

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("scope_known", "api_keys", type_="check")
    op.create_check_constraint(
        "scope_known",
        "api_keys",
        "scope IN ('member', 'read', 'full', 'admin', 'enroll', 'ingest', 'support')",
    )
    op.create_table(
        "stamp_adjustments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("collection_id", sa.String(length=40), nullable=False),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("api_key_id", sa.String(length=40), nullable=True),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("unredeemed_purchases", sa.Integer(), nullable=False),
        sa.Column("owed_stamps", sa.Integer(), nullable=False),
        sa.Column("rewards", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "delta <> 0 AND delta BETWEEN -100 AND 100",
            name=op.f("ck_stamp_adjustments_delta_bounded"),
        ),
        sa.CheckConstraint(
            "char_length(reason) BETWEEN 1 AND 500",
            name=op.f("ck_stamp_adjustments_reason_bounded"),
        ),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["stamp_collections.id"],
            name=op.f("fk_stamp_adjustments_collection_id_stamp_collections"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stamp_adjustments")),
        sa.UniqueConstraint(
            "collection_id", "idempotency_key", name="uq_stamp_adjustments_collection_key"
        ),
    )
    op.create_index(
        "ix_stamp_adjustments_collection_created",
        "stamp_adjustments",
        ["collection_id", "created_at", "id"],
    )
    op.create_index("ix_stamp_adjustments_created", "stamp_adjustments", ["created_at", "id"])
    op.create_index("ix_stamps_created", "stamps", ["created_at", "id"])
    op.create_index(
        "ix_stamps_voided",
        "stamps",
        ["voided_at", "id"],
        postgresql_where=sa.text("status = 'voided'"),
    )
    op.create_index("ix_rewards_created", "rewards", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_rewards_created", table_name="rewards")
    op.drop_index("ix_stamps_voided", table_name="stamps")
    op.drop_index("ix_stamps_created", table_name="stamps")
    op.drop_table("stamp_adjustments")
    op.execute("DELETE FROM api_keys WHERE scope = 'support'")
    op.drop_constraint("scope_known", "api_keys", type_="check")
    op.create_check_constraint(
        "scope_known",
        "api_keys",
        "scope IN ('member', 'read', 'full', 'admin', 'enroll', 'ingest')",
    )
