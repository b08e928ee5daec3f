"""every program version the ledger applied is kept; each reward names its version

Revision ID: 0019
Revises: 0018

A reward is paid on the terms of the program version in force when it was triggered, and a
stamp was counted under the cap and clock in force then: `reconcile` can judge neither by the
current definition alone. Versions applied before this migration are lost but the current
one, which is kept here; rewards made before it name no version.

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The programs row as applied, as `ledger.programs.upsert_program` keeps it; applied when the
# row was last changed.
BACKFILL = """
INSERT INTO program_versions (program_id, version, definition, applied_at)
SELECT id, version,
       jsonb_build_object(
           'id', id, 'name', name, 'qualifying_threshold', qualifying_threshold,
           'reward_config', reward_config, 'display_content', display_content, 'rules', rules,
           'status', status, 'active_from', active_from, 'active_until', active_until,
           'version', version),
       updated_at
FROM programs
"""


def upgrade() -> None:
    op.create_table(
        "program_versions",
        sa.Column("program_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("definition", postgresql.JSONB(), nullable=False),
        sa.Column(
            "applied_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name="fk_program_versions_program_id_programs"
        ),
        sa.PrimaryKeyConstraint("program_id", "version", name="pk_program_versions"),
    )
    op.execute(BACKFILL)
    op.add_column("rewards", sa.Column("program_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("rewards", "program_version")
    op.drop_table("program_versions")
