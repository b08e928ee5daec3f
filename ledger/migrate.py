"""Applies the ledger's Alembic migrations to a database."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from ledger.sealing import Keyring


def alembic_config(engine: Engine, keyring: Keyring | None = None) -> Config:
    config = Config()
    # Migrations that seal or open webhook secrets need the keys (0010).
    config.attributes["secret_keyring"] = keyring
    config.set_main_option("script_location", "ledger:migrations")
    # Alembic's options are configparser values: a `%` (an escaped password character) is
    # written `%%`.
    url = engine.url.render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head", keyring: Keyring | None = None) -> None:
    """Bring the schema up to `revision`; safe to run from several processes at once.

    Plaintext webhook secrets are sealed with `keyring` on the way; without it, a database
    that holds some is refused (SecretKeyMissing) and left as it was.
    """
    command.upgrade(alembic_config(engine, keyring), revision)


def downgrade(engine: Engine, revision: str, keyring: Keyring | None = None) -> None:
    """Take the schema back to `revision` (`base` removes every table)."""
    command.downgrade(alembic_config(engine, keyring), revision)


def current(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
