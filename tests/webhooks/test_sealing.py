"""Sealing secrets at rest, and values that hold a secret keep it out of their repr."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from ledger.errors import SecretKeyError, SecretKeyMissing, SecretUnreadable
from ledger.keys import ApiKeyRecord, IssuedKey, Scope
from ledger.sealing import Keyring, is_sealed, sealed_key_id
from ledger.webhook_endpoints import EndpointRecord, EndpointWithSecret, new_secret
from publisher_api.webhook_schemas import WebhookEndpointWithSecret
from webhooks.store import Claim

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
OLD = base64.urlsafe_b64encode(b"o" * 32).decode()
NEW = base64.urlsafe_b64encode(b"n" * 32).decode()
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def test_a_sealed_secret_opens_with_its_context_and_shows_no_plaintext() -> None:
    keyring = Keyring.from_text(OLD)
    sealed = keyring.seal(SECRET, "webhook_endpoints.secret/ep_1")
    assert is_sealed(sealed) and sealed_key_id(sealed) == keyring.primary_id
    assert SECRET not in sealed and SECRET.removeprefix("whsec_") not in sealed
    assert OLD.rstrip("=") not in sealed
    assert keyring.open(sealed, "webhook_endpoints.secret/ep_1") == SECRET
    assert keyring.seal(SECRET, "x") != keyring.seal(SECRET, "x")


def test_the_first_key_seals_and_every_key_opens() -> None:
    sealed = Keyring.from_text(OLD).seal(SECRET, "c")
    rotated = Keyring.from_text(f"{NEW}, {OLD}")
    assert rotated.open(sealed, "c") == SECRET
    assert sealed_key_id(rotated.seal(SECRET, "c")) == Keyring.from_text(NEW).primary_id


def test_a_wrong_key_is_named_not_guessed_at() -> None:
    sealed = Keyring.from_text(OLD).seal(SECRET, "c")
    with pytest.raises(SecretKeyMissing, match="not among the configured keys"):
        Keyring.from_text(NEW).open(sealed, "c")


@pytest.mark.parametrize("context", ["webhook_endpoints.secret/ep_2", "other"])
def test_a_sealed_value_opens_only_in_its_own_context(context: str) -> None:
    keyring = Keyring.from_text(OLD)
    sealed = keyring.seal(SECRET, "webhook_endpoints.secret/ep_1")
    with pytest.raises(SecretUnreadable, match="copied from another row"):
        keyring.open(sealed, context)


def test_an_altered_sealed_value_does_not_open() -> None:
    keyring = Keyring.from_text(OLD)
    sealed = keyring.seal(SECRET, "c")
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(SecretUnreadable):
        keyring.open(flipped, "c")
    with pytest.raises(SecretUnreadable, match="not sealed"):
        keyring.open(SECRET, "c")


@pytest.mark.parametrize("text", ["", "short", base64.urlsafe_b64encode(b"x" * 16).decode()])
def test_a_key_is_32_bytes_of_url_safe_base64(text: str) -> None:
    with pytest.raises(SecretKeyError, match="32 random bytes"):
        Keyring.from_text(text)


def endpoint() -> EndpointRecord:
    return EndpointRecord(
        "ep_1", "https://x.test/", "", ("reward.triggered",), None, None, None, NOW, NOW
    )


def test_values_holding_a_secret_or_a_key_keep_it_out_of_their_repr() -> None:
    secret, previous = new_secret(), new_secret()
    keyring = Keyring.from_text(OLD)
    claim = Claim(1, "msg_1", "ep_1", "https://x.test/", b"{}", secret, previous, NOW, 1, NOW)
    public = WebhookEndpointWithSecret(
        **{**vars(endpoint()), "event_types": ["reward.triggered"], "enabled": True},
        secret=secret,
    )
    record = ApiKeyRecord("key_1", "ops", "abc", Scope.ADMIN, NOW, None, None, None)
    issued = IssuedKey(record, "ask_abc_" + secret)
    for value in (claim, EndpointWithSecret(endpoint(), secret), public, issued):
        assert secret.removeprefix("whsec_") not in repr(value)
    assert previous.removeprefix("whsec_") not in repr(claim)
    assert OLD.rstrip("=") not in repr(keyring) and repr(b"o" * 32) not in repr(keyring)
