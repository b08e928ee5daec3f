"""Upgrading a database whose webhook secrets are plaintext leaves none behind."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text

from ledger import migrate
from ledger.errors import SecretKeyMissing
from ledger.sealing import Keyring
from ledger.webhook_secrets import open_secret
from tests.conftest import scratch_database

KEYRING = Keyring.from_text(base64.urlsafe_b64encode(b"u" * 32).decode())
LIVE, OLD_PREVIOUS, DELETED = "whsec_bGl2ZQ==", "whsec_b2xk", "whsec_Z29uZQ=="
ROWS = """
INSERT INTO webhook_endpoints (id, url, event_types, secret, previous_secret,
                               previous_secret_expires_at, deleted_at)
VALUES ('ep_live', 'https://a.test/', '[]', :live, :old, now() + interval '1 hour', NULL),
       ('ep_expired', 'https://b.test/', '[]', :live, :old, now() - interval '1 hour', NULL),
       ('ep_deleted', 'https://c.test/', '[]', :deleted, :old, now() + interval '1 hour', now())
"""
TABLE = "SELECT * FROM webhook_endpoints ORDER BY id"


@pytest.fixture
def plaintext(postgres_server_url: str) -> Iterator[Engine]:
    """A database at 0009 with plaintext secrets, as the previous release left it."""
    with scratch_database(postgres_server_url) as url:
        engine = create_engine(url)
        migrate.upgrade(engine, "0009")
        with engine.begin() as conn:
            conn.execute(text(ROWS), {"live": LIVE, "old": OLD_PREVIOUS, "deleted": DELETED})
        yield engine
        engine.dispose()


def endpoints(engine: Engine) -> dict[str, tuple[object, ...]]:
    with engine.connect() as conn:
        return {row.id: row for row in conn.execute(text(TABLE))}


def test_upgrading_seals_every_plaintext_secret_and_drops_the_ones_not_needed(
    plaintext: Engine,
) -> None:
    migrate.upgrade(plaintext, keyring=KEYRING)
    found = endpoints(plaintext)
    assert "whsec_" not in repr(found)
    live, expired, deleted = found["ep_live"], found["ep_expired"], found["ep_deleted"]
    assert open_secret(KEYRING, "ep_live", "secret", live.secret) == LIVE  # type: ignore[attr-defined]
    previous = live.previous_secret  # type: ignore[attr-defined]
    assert open_secret(KEYRING, "ep_live", "previous_secret", previous) == OLD_PREVIOUS
    assert expired.previous_secret is None  # type: ignore[attr-defined]
    assert (deleted.secret, deleted.previous_secret) == (None, None)  # type: ignore[attr-defined]


def test_upgrading_plaintext_secrets_without_the_key_is_refused_and_changes_nothing(
    plaintext: Engine,
) -> None:
    before = endpoints(plaintext)
    with pytest.raises(SecretKeyMissing, match="AUTOSTAMP_SECRET_KEY"):
        migrate.upgrade(plaintext)
    assert migrate.current(plaintext) == "0009"
    assert endpoints(plaintext) == before


def test_downgrading_opens_the_secrets_again(plaintext: Engine) -> None:
    migrate.upgrade(plaintext, keyring=KEYRING)
    migrate.downgrade(plaintext, "0009", keyring=KEYRING)
    live = endpoints(plaintext)["ep_live"]
    assert (live.secret, live.previous_secret) == (LIVE, OLD_PREVIOUS)  # type: ignore[attr-defined]
