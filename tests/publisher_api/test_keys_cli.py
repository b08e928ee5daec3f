"""`autostamp keys`: the operator's way to issue, list, revoke and rotate API keys."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from autostamp.embedded import free_port
from autostamp.keys_cli import app
from ledger.schema import ApiKey
from tests.webhooks.support import TEST_KEY


@pytest.fixture
def cli(database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("DATABASE_URL", database_url)
    return CliRunner()


def test_create_prints_only_the_token_on_stdout_and_stores_its_hash(
    cli: CliRunner, engine: Engine
) -> None:
    result = cli.invoke(app, ["create", "--name", "mobile app", "--scope", "full"])

    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    _, prefix, secret = token.split("_")
    with engine.connect() as conn:
        row = conn.execute(select(ApiKey)).one()
    assert (row.prefix, row.scope, row.name) == (prefix, "full", "mobile app")
    assert row.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    assert "shown once" in result.stderr


def test_list_revoke_and_rotate(cli: CliRunner, engine: Engine) -> None:
    cli.invoke(app, ["create", "--name", "backend"])
    with engine.connect() as conn:
        key_id = conn.execute(select(ApiKey.id)).scalar_one()

    rotated = cli.invoke(app, ["rotate", key_id])
    revoked = cli.invoke(app, ["revoke", key_id])
    listed = cli.invoke(app, ["list"])

    assert rotated.exit_code == 0 and rotated.stdout.startswith("ask_")
    assert revoked.exit_code == 0
    [line] = [line for line in listed.stdout.splitlines() if key_id in line]
    assert "revoked" in line and "backend" in line and "read" in line
    assert rotated.stdout.strip().split("_")[2] not in listed.stdout


def test_unknown_key_and_bad_scope_exit_non_zero_with_a_reason(cli: CliRunner) -> None:
    unknown = cli.invoke(app, ["revoke", "key_NOPE"])
    bad_scope = cli.invoke(app, ["create", "--name", "x", "--scope", "root"])

    assert unknown.exit_code == 1 and "key_NOPE" in unknown.stderr
    assert bad_scope.exit_code == 2


def test_without_a_reachable_database_it_says_how_to_configure_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("AUTOSTAMP_DATABASE_URL", raising=False)
    # Nothing configured means the embedded database of `autostamp up`; here it is not running.
    monkeypatch.setenv("AUTOSTAMP_DATABASE_EMBEDDED_PORT", str(free_port()))

    result = CliRunner().invoke(app, ["list"])

    assert result.exit_code == 1
    assert "DATABASE_URL" in result.stderr


def test_create_points_mobile_apps_to_member_tokens_and_mints_none_itself(cli: CliRunner) -> None:
    helped = cli.invoke(app, ["create", "--help"], terminal_width=200)
    member = cli.invoke(app, ["create", "--name", "phone", "--scope", "member"])

    assert "mobile app" not in helped.stdout.split("--scope")[0]
    assert "member token" in " ".join(helped.stdout.split())
    assert member.exit_code == 2
    assert "member-token/create" in member.stderr


def test_a_signed_ingest_key_prints_its_signing_secret_once_and_stores_it_sealed(
    cli: CliRunner, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOSTAMP_SECRET_KEY", TEST_KEY)
    result = cli.invoke(app, ["create", "--name", "bank", "--scope", "ingest", "--signed"])
    not_ingest = cli.invoke(app, ["create", "--name", "x", "--scope", "full", "--signed"])

    assert result.exit_code == 0, result.output
    token, secret = result.stdout.split()
    assert token.startswith("ask_") and secret.startswith("isec_")
    with engine.connect() as conn:
        row = conn.execute(select(ApiKey)).one()
    assert row.scope == "ingest" and row.signing_secret.startswith("sealed.v1.")
    assert secret not in row.signing_secret
    assert not_ingest.exit_code == 2
