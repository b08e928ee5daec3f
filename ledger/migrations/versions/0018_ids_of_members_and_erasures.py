"""every id is the member's; a reward may name no purchase; erasures are kept

Revision ID: 0018
Revises: 0017

Two banks feeding one instance may reuse an event id: remembered events and undos are keyed
by member and id, so neither member's event is mistaken for the other's. A cycle completed
by an edit with nothing left to pay back names no purchase. An erased member's pseudonym is
kept, so the worker applies their later events to the renamed rows.

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("purchase_events", "undos"):
        op.drop_constraint(f"pk_{table}", table, type_="primary")
        op.create_primary_key(f"pk_{table}", table, ["member_id", "id"])
    op.alter_column("rewards", "purchase_id", nullable=True)
    op.alter_column("rewards", "transaction_id", nullable=True)
    op.create_table(
        "erased_members",
        sa.Column("pseudonym", sa.Text(), nullable=False),
        sa.Column(
            "erased_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("pseudonym", name="pk_erased_members"),
    )


def downgrade() -> None:
    bind = op.get_bind()
    for table in ("purchase_events", "undos"):
        shared = bind.execute(
            sa.text(f"SELECT count(*) - count(DISTINCT id) FROM {table}")  # noqa: S608
        ).scalar_one()
        if shared:
            raise RuntimeError(f"{table} holds ids shared by two members: cannot go below 0018")
    if bind.execute(sa.text("SELECT count(*) FROM rewards WHERE purchase_id IS NULL")).scalar():
        raise RuntimeError("rewards that name no purchase: cannot go below 0018")
    op.drop_table("erased_members")
    op.alter_column("rewards", "transaction_id", nullable=False)
    op.alter_column("rewards", "purchase_id", nullable=False)
    for table in ("purchase_events", "undos"):
        op.drop_constraint(f"pk_{table}", table, type_="primary")
        op.create_primary_key(f"pk_{table}", table, ["id"])
