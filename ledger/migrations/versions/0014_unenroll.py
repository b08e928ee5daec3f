"""unenrolling: a collection may end, and only live collections are one per program and member

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "stamp_collections", sa.Column("unenrolled_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "uq_stamp_collections_program_member_live",
        "stamp_collections",
        ["program_id", "member_id"],
        unique=True,
        postgresql_where=sa.text("unenrolled_at IS NULL"),
    )
    op.drop_constraint("uq_stamp_collections_program_member", "stamp_collections", type_="unique")


def downgrade() -> None:
    # The old constraint cannot hold a member's ended collection beside a newer one, and
    # either holds stamps and rewards: refuse rather than lose history.
    both = op.get_bind().execute(
        sa.text(
            "SELECT count(*) FROM stamp_collections c WHERE unenrolled_at IS NOT NULL AND EXISTS ("
            " SELECT 1 FROM stamp_collections o WHERE o.program_id = c.program_id"
            " AND o.member_id = c.member_id AND o.id <> c.id)"
        )
    )
    if both.scalar_one():
        raise RuntimeError("members enrolled again after unenrolling: cannot go below 0014")
    op.create_unique_constraint(
        "uq_stamp_collections_program_member", "stamp_collections", ["program_id", "member_id"]
    )
    op.drop_index("uq_stamp_collections_program_member_live", table_name="stamp_collections")
    op.drop_column("stamp_collections", "unenrolled_at")
