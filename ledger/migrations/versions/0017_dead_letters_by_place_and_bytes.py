"""dead letters are one per place in the topic and bytes, not per place alone

Revision ID: 0017
Revises: 0016

A topic whose offsets start again (the embedded broker keeps its log in memory) puts new
messages at the places of old ones: keyed by place alone, a refused one there was dropped.

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PLACE = ["source_topic", "source_partition", "source_offset", "item"]


def upgrade() -> None:
    op.drop_constraint("uq_dead_letters_source", "dead_letters", type_="unique")
    op.create_unique_constraint("uq_dead_letters_source", "dead_letters", [*_PLACE, "sha256"])


def downgrade() -> None:
    # Keeps the first letter of each place: the constraint below holds one per place.
    op.execute(
        "DELETE FROM dead_letters d USING dead_letters e WHERE d.source_topic = e.source_topic"
        " AND d.source_partition = e.source_partition AND d.source_offset = e.source_offset"
        " AND d.item = e.item AND d.id > e.id"
    )
    op.drop_constraint("uq_dead_letters_source", "dead_letters", type_="unique")
    op.create_unique_constraint("uq_dead_letters_source", "dead_letters", _PLACE)
