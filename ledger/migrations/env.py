"""Alembic environment: runs migrations on the connection the caller hands in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, text

from ledger.schema import Base

# Serialises concurrent `db upgrade` runs (several workers starting at once).
MIGRATION_LOCK_ID = 0x6175746F


def run(connection: Connection) -> None:
    connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
    try:
        context.configure(connection=connection, target_metadata=Base.metadata)
        with context.begin_transaction():
            context.run_migrations()
    except BaseException:
        # The lock began the transaction, so it is ours to end: a failed upgrade leaves nothing.
        connection.rollback()
        raise
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.commit()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as new_connection:
            run(new_connection)
    finally:
        engine.dispose()


run_online()
