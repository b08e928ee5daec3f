"""purchases, undos and program revisions

A purchase is now every event sharing its purchase_id: the events that qualified for a
program are kept in `purchase_events`, every refund and reversal in `undos`, and stamps carry
a status (live, capped, voided). Rewards record the threshold they consumed; programs carry
the ledger-wide revision that last changed them. `processed_transactions` and
`pending_undos` are folded into the new tables.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOW = sa.text("now()")


def _source_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("source_topic", sa.Text(), nullable=False),
        sa.Column("source_partition", sa.Integer(), nullable=False),
        sa.Column("source_offset", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
    ]


def upgrade() -> None:
    _programs_revisions()
    _stamps_and_rewards()
    _purchase_events()
    _undos()
    op.drop_table("pending_undos")
    op.drop_index("ix_processed_transactions_purchase", table_name="processed_transactions")
    op.drop_table("processed_transactions")


def _programs_revisions() -> None:
    op.add_column(
        "programs", sa.Column("revision", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.create_index(op.f("ix_programs_revision"), "programs", ["revision"])
    op.create_table(
        "program_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_program_revision_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_program_revision")),
    )
    op.execute("UPDATE programs SET revision = 1")
    op.execute("INSERT INTO program_revision (id, revision) VALUES (1, 1)")


def _stamps_and_rewards() -> None:
    op.add_column(
        "stamps", sa.Column("status", sa.String(length=8), server_default="live", nullable=False)
    )
    op.execute("UPDATE stamps SET status = 'voided' WHERE voided_at IS NOT NULL")
    op.create_check_constraint(
        op.f("ck_stamps_status_known"), "stamps", "status IN ('live', 'capped', 'voided')"
    )
    op.create_check_constraint(
        op.f("ck_stamps_void_has_its_undo"),
        "stamps",
        "(status = 'voided') = (void_transaction_id IS NOT NULL)",
    )
    op.add_column("rewards", sa.Column("stamps_used", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE rewards r SET stamps_used = p.qualifying_threshold "
        "FROM stamp_collections c JOIN programs p ON p.id = c.program_id "
        "WHERE c.id = r.collection_id"
    )
    op.alter_column("rewards", "stamps_used", nullable=False)
    op.create_check_constraint(
        op.f("ck_rewards_stamps_used_positive"), "rewards", "stamps_used >= 1"
    )


def _purchase_events() -> None:
    op.create_table(
        "purchase_events",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("purchase_id", sa.Text(), nullable=False),
        sa.Column("member_id", sa.Text(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True),
        *_source_columns(),
        sa.CheckConstraint(
            "type IN ('auth', 'clearing')", name=op.f("ck_purchase_events_type_stamps")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchase_events")),
    )
    op.create_index(
        "ix_purchase_events_member_purchase", "purchase_events", ["member_id", "purchase_id"]
    )
    op.execute(
        """
        INSERT INTO purchase_events (id, purchase_id, member_id, type, source_topic,
                                     source_partition, source_offset, created_at)
        SELECT transaction_id, purchase_id, member_id, type, source_topic, source_partition,
               source_offset, processed_at
        FROM processed_transactions WHERE type IN ('auth', 'clearing')
        """
    )


def _undos() -> None:
    op.create_table(
        "undos",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("original_id", sa.Text(), nullable=False),
        sa.Column("member_id", sa.Text(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        *_source_columns(),
        sa.CheckConstraint("type IN ('refund', 'reversal')", name=op.f("ck_undos_type_undoes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_undos")),
    )
    op.create_index("ix_undos_member_original", "undos", ["member_id", "original_id"])
    # The undos that waited for their purchase kept what they named; those that voided a stamp
    # at once are known by that stamp. Amounts were not kept: these count as full undos.
    op.execute(
        """
        INSERT INTO undos (id, original_id, member_id, type, source_topic, source_partition,
                           source_offset, created_at)
        SELECT u.transaction_id, u.original_id, u.member_id, u.type,
               coalesce(p.source_topic, ''), coalesce(p.source_partition, -1),
               coalesce(p.source_offset, -1), u.received_at
        FROM pending_undos u LEFT JOIN processed_transactions p
             ON p.transaction_id = u.transaction_id
        ON CONFLICT (id) DO NOTHING
        """
    )
    op.execute(
        """
        INSERT INTO undos (id, original_id, member_id, type, source_topic, source_partition,
                           source_offset, created_at)
        SELECT DISTINCT ON (s.void_transaction_id) s.void_transaction_id, s.purchase_id,
               c.member_id, coalesce(p.type, 'refund'), coalesce(p.source_topic, ''),
               coalesce(p.source_partition, -1), coalesce(p.source_offset, -1),
               coalesce(p.processed_at, s.voided_at)
        FROM stamps s JOIN stamp_collections c ON c.id = s.collection_id
             LEFT JOIN processed_transactions p ON p.transaction_id = s.void_transaction_id
        WHERE s.void_transaction_id IS NOT NULL
        ORDER BY s.void_transaction_id, s.id
        ON CONFLICT (id) DO NOTHING
        """
    )


def downgrade() -> None:
    op.create_table(
        "processed_transactions",
        sa.Column("transaction_id", sa.Text(), nullable=False),
        sa.Column("purchase_id", sa.Text(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("member_id", sa.Text(), nullable=False),
        sa.Column("deliveries", sa.Integer(), server_default="1", nullable=False),
        sa.Column("source_topic", sa.Text(), nullable=False),
        sa.Column("source_partition", sa.Integer(), nullable=False),
        sa.Column("source_offset", sa.BigInteger(), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.PrimaryKeyConstraint("transaction_id", name=op.f("pk_processed_transactions")),
    )
    op.create_index("ix_processed_transactions_purchase", "processed_transactions", ["purchase_id"])
    op.create_table(
        "pending_undos",
        sa.Column("transaction_id", sa.Text(), nullable=False),
        sa.Column("original_id", sa.Text(), nullable=False),
        sa.Column("member_id", sa.Text(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("transaction_id", name=op.f("pk_pending_undos")),
    )
    op.create_index("ix_pending_undos_original", "pending_undos", ["member_id", "original_id"])
    op.execute(
        """
        INSERT INTO processed_transactions (transaction_id, purchase_id, type, member_id,
                                            source_topic, source_partition, source_offset)
        SELECT id, purchase_id, type, member_id, source_topic, source_partition, source_offset
        FROM purchase_events
        UNION ALL
        SELECT id, id, type, member_id, source_topic, source_partition, source_offset FROM undos
        """
    )
    op.execute(
        """
        INSERT INTO pending_undos (transaction_id, original_id, member_id, type, received_at)
        SELECT id, original_id, member_id, type, created_at FROM undos
        """
    )
    op.drop_table("undos")
    op.drop_table("purchase_events")
    op.drop_constraint(op.f("ck_rewards_stamps_used_positive"), "rewards", type_="check")
    op.drop_column("rewards", "stamps_used")
    op.drop_constraint(op.f("ck_stamps_void_has_its_undo"), "stamps", type_="check")
    op.drop_constraint(op.f("ck_stamps_status_known"), "stamps", type_="check")
    op.drop_column("stamps", "status")
    op.drop_table("program_revision")
    op.drop_index(op.f("ix_programs_revision"), table_name="programs")
    op.drop_column("programs", "revision")
