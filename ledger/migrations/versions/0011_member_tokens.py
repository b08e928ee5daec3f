"""member tokens: short-lived keys of the member scope, bound to one member

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("member_id", sa.Text(), nullable=True))
    op.drop_constraint("scope_known", "api_keys", type_="check")
    op.create_check_constraint(
        "scope_known", "api_keys", "scope IN ('member', 'read', 'full', 'admin', 'enroll')"
    )
    op.create_check_constraint(
        "member_token_shape",
        "api_keys",
        "(scope = 'member') = (member_id IS NOT NULL)"
        " AND (scope <> 'member' OR expires_at IS NOT NULL)",
    )
    op.create_index(
        "ix_api_keys_member_token_expiry",
        "api_keys",
        ["expires_at"],
        postgresql_where=sa.text("scope = 'member'"),
    )


def downgrade() -> None:
    op.drop_index("ix_api_keys_member_token_expiry", table_name="api_keys")
    op.drop_constraint("member_token_shape", "api_keys", type_="check")
    op.execute("DELETE FROM api_keys WHERE scope = 'member'")
    op.drop_constraint("scope_known", "api_keys", type_="check")
    op.create_check_constraint(
        "scope_known", "api_keys", "scope IN ('read', 'full', 'admin', 'enroll')"
    )
    op.drop_column("api_keys", "member_id")
