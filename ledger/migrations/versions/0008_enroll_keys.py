"""enroll keys: a scope that only enrolls, with the browser origins it may be used from

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("scope_known", "api_keys", type_="check")
    op.create_check_constraint(
        "scope_known", "api_keys", "scope IN ('read', 'full', 'admin', 'enroll')"
    )
    op.add_column(
        "api_keys",
        sa.Column(
            "allowed_origins",
            postgresql.JSONB(),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("api_keys", "allowed_origins")
    op.execute("DELETE FROM api_keys WHERE scope = 'enroll'")
    op.drop_constraint("scope_known", "api_keys", type_="check")
    op.create_check_constraint("scope_known", "api_keys", "scope IN ('read', 'full', 'admin')")
