"""ingest keys: the ingest scope, sealed request-signing secrets, ingested ids, used signatures

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("signing_secret", sa.Text(), nullable=True))
    op.drop_constraint("scope_known", "api_keys", type_="check")
    op.create_check_constraint(
        "scope_known",
        "api_keys",
        "scope IN ('member', 'read', 'full', 'admin', 'enroll', 'ingest')",
    )
    op.create_check_constraint(
        "signing_secret_sealed",
        "api_keys",
        "signing_secret IS NULL OR (scope = 'ingest' AND signing_secret LIKE 'sealed.%')",
    )
    op.create_table(
        "ingested_transactions",
        sa.Column("transaction_id", sa.Text(), nullable=False),
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("transaction_id", name=op.f("pk_ingested_transactions")),
    )
    op.create_table(
        "ingest_signatures",
        sa.Column("signature", sa.String(length=64), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("signature", name=op.f("pk_ingest_signatures")),
    )
    op.create_index(
        "ix_ingest_signatures_signed_at", "ingest_signatures", ["signed_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_ingest_signatures_signed_at", table_name="ingest_signatures")
    op.drop_table("ingest_signatures")
    op.drop_table("ingested_transactions")
    op.drop_constraint("signing_secret_sealed", "api_keys", type_="check")
    op.execute("DELETE FROM api_keys WHERE scope = 'ingest'")
    op.drop_constraint("scope_known", "api_keys", type_="check")
    op.create_check_constraint(
        "scope_known", "api_keys", "scope IN ('member', 'read', 'full', 'admin', 'enroll')"
    )
    op.drop_column("api_keys", "signing_secret")
