"""dead letters: size, hash, publish failures and replays

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("dead_letters", sa.Column("size", sa.BigInteger(), nullable=True))
    op.add_column("dead_letters", sa.Column("sha256", sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE dead_letters SET size = length(value), sha256 = encode(sha256(value), 'hex')"
    )
    op.alter_column("dead_letters", "size", nullable=False)
    op.alter_column("dead_letters", "sha256", nullable=False)
    op.add_column("dead_letters", sa.Column("publish_error", sa.Text(), nullable=True))
    op.add_column(
        "dead_letters", sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("dead_letters", "replayed_at")
    op.drop_column("dead_letters", "publish_error")
    op.drop_column("dead_letters", "sha256")
    op.drop_column("dead_letters", "size")
