"""stamps found by purchase: one stamp per purchase and collection, indexed purchase first

The index on (collection_id, transaction_id) served lookups no query makes any more.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("uq_stamps_collection_purchase", "stamps", type_="unique")
    op.create_unique_constraint(
        "uq_stamps_collection_purchase", "stamps", ["purchase_id", "collection_id"]
    )
    op.drop_index("ix_stamps_collection_transaction", table_name="stamps")


def downgrade() -> None:
    op.create_index(
        "ix_stamps_collection_transaction", "stamps", ["collection_id", "transaction_id"]
    )
    op.drop_constraint("uq_stamps_collection_purchase", "stamps", type_="unique")
    op.create_unique_constraint(
        "uq_stamps_collection_purchase", "stamps", ["collection_id", "purchase_id"]
    )
