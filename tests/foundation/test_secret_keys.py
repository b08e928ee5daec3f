"""The key that seals webhook secrets: generated once for the embedded default, else required."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autostamp.cli import app
from autostamp.settings import Settings
from autostamp.state_secrets import state_secret
from autostamp.wiring import secret_keyring
from ledger.errors import SecretKeyError, SecretKeyMissing

runner = CliRunner()


@pytest.fixture
def no_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("AUTOSTAMP_SECRET_KEY", "DATABASE_URL", "AUTOSTAMP_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    state = tmp_path / "state"
    monkeypatch.setenv("AUTOSTAMP_STATE_DIR", str(state))
    return state


def test_a_state_secret_is_created_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    first = state_secret(tmp_path / "state", "secret")
    path = tmp_path / "state" / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(base64.urlsafe_b64decode(first)) == 32
    assert state_secret(tmp_path / "state", "secret") == first
    assert state_secret(tmp_path / "state", "other") != first


def test_the_embedded_database_gets_a_key_from_the_state_directory(no_key: Path) -> None:
    keyring = secret_keyring(Settings())
    assert stat.S_IMODE((no_key / "secret.key").stat().st_mode) == 0o600
    assert secret_keyring(Settings()).primary_id == keyring.primary_id


def test_a_configured_database_without_a_key_is_refused_naming_the_setting(
    no_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://db.example.test/autostamp")
    with pytest.raises(SecretKeyMissing, match="AUTOSTAMP_SECRET_KEY is not set"):
        secret_keyring(Settings())
    assert not no_key.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["dispatcher"],
        ["api"],
        ["setup"],
        ["webhooks", "rewrap-secrets"],
        ["webhooks", "endpoints", "create", "https://hooks.example.test/"],
    ],
)
def test_processes_and_commands_refuse_to_start_without_the_key(
    no_key: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://db.example.test/autostamp")
    result = runner.invoke(app, command)
    assert result.exit_code == 78, result.output  # EX_CONFIG, as for any missing setting
    assert "AUTOSTAMP_SECRET_KEY is not set" in result.output


def test_a_malformed_key_is_refused_naming_the_setting(
    no_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOSTAMP_SECRET_KEY", "not-a-key")
    with pytest.raises(SecretKeyError, match="AUTOSTAMP_SECRET_KEY: each key is 32"):
        secret_keyring(Settings())
