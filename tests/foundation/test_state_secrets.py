"""Secrets the embedded default makes for itself: made once, readable by its owner only."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from autostamp.settings import Settings
from autostamp.state_secrets import state_secret
from autostamp.wiring import SettingRequired, programs_signing_keys
from streams.program_signing import key_id


def test_a_state_secret_is_made_once_with_mode_0600_and_then_reused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    secret = state_secret(state, "programs-signing")
    path = state / "programs-signing.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(base64.urlsafe_b64decode(secret + "=")) == 32
    assert state_secret(state, "programs-signing") == secret
    assert path.read_text().strip() == secret


def test_each_name_has_a_secret_of_its_own(tmp_path: Path) -> None:
    assert state_secret(tmp_path, "one") != state_secret(tmp_path, "two")


@pytest.fixture
def unconfigured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("AUTOSTAMP_PROGRAMS_SIGNING_KEY", "KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AUTOSTAMP_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("AUTOSTAMP_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def test_the_embedded_broker_signs_programs_with_a_key_kept_under_the_state_directory(
    unconfigured: Path,
) -> None:
    keys = programs_signing_keys(Settings())
    path = unconfigured / "programs-signing.key"
    assert keys.keys == (path.read_text().strip(),)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert programs_signing_keys(Settings()).keys == keys.keys


def test_a_configured_broker_without_a_programs_key_is_refused_by_name(
    unconfigured: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka.example.com:9092")
    with pytest.raises(SettingRequired, match="AUTOSTAMP_PROGRAMS_SIGNING_KEY is not set"):
        programs_signing_keys(Settings())
    assert not unconfigured.exists()


def test_configured_keys_sign_with_the_first_and_verify_with_all(
    unconfigured: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new, old = "n" * 32, "o" * 40
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka.example.com:9092")
    monkeypatch.setenv("AUTOSTAMP_PROGRAMS_SIGNING_KEY", f"{new},{old}")
    keys = programs_signing_keys(Settings())
    assert keys.keys == (new, old)
    assert dict(keys.sign(b"k", b"v"))["autostamp-key-id"] == key_id(new).encode()


def test_a_short_configured_key_is_refused_without_showing_it(
    unconfigured: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOSTAMP_PROGRAMS_SIGNING_KEY", "too-short-a-key")
    with pytest.raises(SettingRequired, match="AUTOSTAMP_PROGRAMS_SIGNING_KEY") as refused:
        programs_signing_keys(Settings())
    assert "too-short-a-key" not in str(refused.value)
