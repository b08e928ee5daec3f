"""Signatures of the programs topic, checked as pure functions: who signed, over what."""

from __future__ import annotations

import base64

import pytest

from streams.program_signing import (
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    ProgramKeys,
    ProgramSignatureError,
    ProgramSignatureMismatch,
    UnknownSigningKey,
    UnsignedProgram,
    key_id,
)

OURS = "our-programs-signing-key-0123456789abcdef"
NEW = "the-new-programs-signing-key-0123456789abc"
THEIRS = "someone-elses-signing-key-0123456789abcdef"
KEY, VALUE = b"lp_free", b'{"id": "lp_free", "reward_config": {"type": "fixed-reward"}}'


def keys(*listed: str) -> ProgramKeys:
    return ProgramKeys(listed)


def test_a_definition_signed_with_our_key_verifies() -> None:
    headers = keys(OURS).sign(KEY, VALUE)
    keys(OURS).verify(KEY, VALUE, headers)
    keys(OURS).verify(KEY, VALUE, dict(headers))


def test_the_signature_is_v1_base64_of_an_hmac_sha256_named_by_a_key_id() -> None:
    headers = dict(keys(OURS).sign(KEY, VALUE))
    version, _, encoded = headers[SIGNATURE_HEADER].partition(b",")
    assert version == b"v1"
    assert len(base64.b64decode(encoded, validate=True)) == 32
    assert headers[KEY_ID_HEADER] == key_id(OURS).encode()


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ((), "no autostamp-signature header"),
        (((KEY_ID_HEADER, key_id(OURS).encode()),), "no autostamp-signature header"),
        (((SIGNATURE_HEADER, b"v1,not base64!"), (KEY_ID_HEADER, b"x")), "not v1,<base64>"),
        (((SIGNATURE_HEADER, b"v2,AAAA"), (KEY_ID_HEADER, b"x")), "not v1,<base64>"),
        (((SIGNATURE_HEADER, b"v1,AAAA"),), "no autostamp-key-id header"),
    ],
)
def test_a_definition_without_a_readable_signature_is_refused_as_unsigned(
    headers: tuple[tuple[str, bytes], ...], reason: str
) -> None:
    with pytest.raises(UnsignedProgram, match=reason):
        keys(OURS).verify(KEY, VALUE, headers)


def test_a_definition_signed_with_another_key_is_refused() -> None:
    with pytest.raises(UnknownSigningKey, match="wrong signature"):
        keys(OURS).verify(KEY, VALUE, keys(THEIRS).sign(KEY, VALUE))


def test_a_signature_made_with_another_key_under_our_key_id_is_refused() -> None:
    forged = dict(keys(THEIRS).sign(KEY, VALUE)) | {KEY_ID_HEADER: key_id(OURS).encode()}
    with pytest.raises(ProgramSignatureMismatch, match="wrong signature"):
        keys(OURS).verify(KEY, VALUE, forged)


def test_a_signed_value_replayed_under_another_program_id_is_refused() -> None:
    headers = keys(OURS).sign(KEY, VALUE)
    with pytest.raises(ProgramSignatureMismatch):
        keys(OURS).verify(b"lp_other", VALUE, headers)
    with pytest.raises(ProgramSignatureMismatch):
        keys(OURS).verify(None, VALUE, headers)


def test_a_changed_value_is_refused() -> None:
    headers = keys(OURS).sign(KEY, VALUE)
    with pytest.raises(ProgramSignatureMismatch):
        keys(OURS).verify(KEY, VALUE + b" ", headers)


def test_key_and_value_cannot_trade_bytes_under_one_signature() -> None:
    headers = keys(OURS).sign(b"lp_a", b"bc")
    with pytest.raises(ProgramSignatureMismatch):
        keys(OURS).verify(b"lp_ab", b"c", headers)


def test_after_a_rotation_the_new_key_signs_and_the_old_one_still_verifies() -> None:
    rotated = ProgramKeys.parse(f"{NEW}, {OURS}")
    rotated.verify(KEY, VALUE, keys(OURS).sign(KEY, VALUE))
    signed = rotated.sign(KEY, VALUE)
    assert dict(signed)[KEY_ID_HEADER] == key_id(NEW).encode()
    keys(NEW).verify(KEY, VALUE, signed)


def test_a_key_no_longer_listed_no_longer_verifies() -> None:
    with pytest.raises(UnknownSigningKey):
        keys(NEW).verify(KEY, VALUE, keys(OURS).sign(KEY, VALUE))


@pytest.mark.parametrize(
    "headers",
    [
        keys(THEIRS).sign(KEY, VALUE),
        dict(keys(THEIRS).sign(KEY, VALUE)) | {KEY_ID_HEADER: key_id(OURS).encode()},
        keys(OURS).sign(b"lp_other", VALUE),
        (),
    ],
)
def test_no_refusal_shows_a_key(headers: tuple[tuple[str, bytes], ...]) -> None:
    with pytest.raises(ProgramSignatureError) as refused:
        keys(NEW, OURS).verify(KEY, VALUE, headers)
    assert not any(k in str(refused.value) for k in (OURS, NEW, THEIRS))


@pytest.mark.parametrize("text", ["", " , ", "short", f"{OURS},short"])
def test_keys_are_at_least_32_characters(text: str) -> None:
    with pytest.raises(ValueError, match="key"):
        ProgramKeys.parse(text)


def test_the_keys_never_show_in_their_repr() -> None:
    assert OURS not in repr(keys(OURS))
