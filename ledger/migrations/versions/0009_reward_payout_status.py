"""reward payout status: triggered, then paid or failed as the payout system reports

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "rewards",
        sa.Column("payout_status", sa.String(16), server_default="triggered", nullable=False),
    )
    op.add_column(
        "rewards", sa.Column("payout_attempt", sa.Integer(), server_default="1", nullable=False)
    )
    op.add_column("rewards", sa.Column("payout_reason", sa.Text(), nullable=True))
    op.add_column(
        "rewards", sa.Column("payout_reported_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_check_constraint(
        "payout_status_known", "rewards", "payout_status IN ('triggered', 'paid', 'failed')"
    )


def downgrade() -> None:
    op.drop_constraint("payout_status_known", "rewards", type_="check")
    for column in ("payout_reported_at", "payout_reason", "payout_attempt", "payout_status"):
        op.drop_column("rewards", column)
