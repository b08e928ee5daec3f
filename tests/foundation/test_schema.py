"""The database itself refuses what the stamping invariants forbid."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from ledger import migrate
from ledger.schema import Base
from tests.conftest import scratch_database

PROGRAM = """
INSERT INTO programs (id, name, qualifying_threshold, reward_config, display_content, rules)
VALUES ('lp_coffee', 'Coffee', 5, '{"type": "refund"}', '{}', '{}')
"""
COLLECTION = """
INSERT INTO stamp_collections (id, program_id, member_id) VALUES (:id, 'lp_coffee', 'm1')
"""
STAMP = """
INSERT INTO stamps (collection_id, purchase_id, transaction_id, cycle, amount, currency,
                    merchant_id, merchant_name, occurred_at)
VALUES ('sc_1', 'p1', :tx, 1, 450, 'GBP', 'mer_1', 'Bean There', now())
"""
REWARD = """
INSERT INTO rewards (id, collection_id, cycle, type, amount, currency, transaction_id,
                     purchase_id, stamps_used)
VALUES (:id, 'sc_1', 1, 'refund', 450, 'GBP', 't1', 'p1', 5)
"""


@pytest.fixture
def enrolled(engine: Engine) -> Engine:
    with engine.begin() as conn:
        conn.execute(text(PROGRAM))
        conn.execute(text(COLLECTION), {"id": "sc_1"})
    return engine


def test_a_second_collection_for_the_same_member_and_program_is_refused(enrolled: Engine) -> None:
    with pytest.raises(IntegrityError, match="uq_stamp_collections_program_member"):
        with enrolled.begin() as conn:
            conn.execute(text(COLLECTION), {"id": "sc_2"})


def test_a_second_stamp_for_the_same_purchase_is_refused(enrolled: Engine) -> None:
    with enrolled.begin() as conn:
        conn.execute(text(STAMP), {"tx": "t1"})
    with pytest.raises(IntegrityError, match="uq_stamps_collection_purchase"):
        with enrolled.begin() as conn:
            conn.execute(text(STAMP), {"tx": "t2"})


def test_a_second_reward_for_the_same_cycle_is_refused(enrolled: Engine) -> None:
    with enrolled.begin() as conn:
        conn.execute(text(REWARD), {"id": "rw_1"})
    with pytest.raises(IntegrityError, match="uq_rewards_collection_cycle"):
        with enrolled.begin() as conn:
            conn.execute(text(REWARD), {"id": "rw_2"})


def test_a_negative_counter_is_refused(enrolled: Engine) -> None:
    with pytest.raises(IntegrityError, match="count_not_negative"), enrolled.begin() as conn:
        conn.execute(text("UPDATE stamp_collections SET unredeemed_purchases = -1"))


DEDUPE_COLUMNS = [
    ("stamp_collections", "program_id"),
    ("stamp_collections", "member_id"),
    ("stamps", "collection_id"),
    ("stamps", "purchase_id"),
    ("stamps", "transaction_id"),
    ("rewards", "collection_id"),
    ("rewards", "cycle"),
    ("purchase_events", "id"),
    ("purchase_events", "purchase_id"),
    ("purchase_events", "member_id"),
    ("undos", "id"),
    ("undos", "original_id"),
    ("undos", "member_id"),
    ("webhook_deliveries", "message_id"),
    ("webhook_deliveries", "endpoint_id"),
    ("dead_letters", "source_offset"),
]


@pytest.mark.parametrize(("table", "column"), DEDUPE_COLUMNS)
def test_every_dedupe_column_is_not_null(engine: Engine, table: str, column: str) -> None:
    query = text(
        "SELECT is_nullable FROM information_schema.columns "
        "WHERE table_name = :table AND column_name = :column"
    )
    with engine.connect() as conn:
        assert conn.execute(query, {"table": table, "column": column}).scalar_one() == "NO"


def test_the_migrations_build_exactly_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == []


def test_migrations_go_up_from_empty_down_to_nothing_and_up_again(
    postgres_server_url: str,
) -> None:
    with scratch_database(postgres_server_url) as url:
        engine = create_engine(url)
        try:
            migrate.upgrade(engine)
            assert migrate.current(engine) is not None
            assert "stamps" in inspect(engine).get_table_names()
            migrate.downgrade(engine, "base")
            assert migrate.current(engine) is None
            assert inspect(engine).get_table_names() == ["alembic_version"]
            migrate.upgrade(engine)
            assert set(inspect(engine).get_table_names()) >= set(Base.metadata.tables)
        finally:
            engine.dispose()


def test_migration_0019_keeps_the_current_version_of_every_program(
    postgres_server_url: str,
) -> None:
    with scratch_database(postgres_server_url) as url:
        engine = create_engine(url)
        try:
            migrate.upgrade(engine, "0018")
            with engine.begin() as conn:
                conn.execute(text(PROGRAM))
            migrate.upgrade(engine)
            with engine.connect() as conn:
                kept = conn.execute(text("SELECT * FROM program_versions")).one()
        finally:
            engine.dispose()
    assert (kept.program_id, kept.version) == ("lp_coffee", 1)
    assert kept.definition["qualifying_threshold"] == 5
    assert kept.definition["reward_config"] == {"type": "refund"}
