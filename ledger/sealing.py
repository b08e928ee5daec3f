"""Envelope encryption of short secrets at rest. Pure: no I/O, no clock, no environment.

A value is sealed under a fresh 256-bit data key with AES-256-GCM, and the data key is
wrapped by a key-encryption key, also with AES-256-GCM. Both bind the same associated data:
the format, the id of the key-encryption key, and a context the caller names (a table, a
column and a row id), so a value copied to another row or column does not open. The text
stored says which key wrapped it:

    sealed.v1.<key id>.<wrapped data key>.<ciphertext>

The key id is 16 hex digits derived from the key (it does not reveal it); the last two parts
are url-safe base64 of a nonce followed by the AES-GCM output.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.errors import SecretKeyError, SecretKeyMissing, SecretUnreadable

SEALED_PREFIX = "sealed."
_VERSION = "sealed.v1"
KEY_BYTES = 32
_NONCE_BYTES = 12


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id(key: bytes) -> str:
    """The public name of a key: it tells keys apart without revealing them."""
    return hmac.new(key, b"autostamp key id", hashlib.sha256).hexdigest()[:16]


def is_sealed(value: str) -> bool:
    """Whether a stored value is sealed (whatever the key), rather than plaintext."""
    return value.startswith(SEALED_PREFIX)


def sealed_key_id(sealed: str) -> str:
    """The id of the key that wrapped a sealed value."""
    return sealed.split(".")[2] if is_sealed(sealed) else ""


@dataclass(frozen=True)
class Keyring:
    """Key-encryption keys: the first seals, every one opens what it sealed."""

    keys: tuple[bytes, ...] = field(repr=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise SecretKeyError("give at least one key")
        if any(len(key) != KEY_BYTES for key in self.keys):
            raise SecretKeyError(f"each key is {KEY_BYTES} bytes")

    @classmethod
    def from_text(cls, text: str) -> Keyring:
        """Keys from a comma-separated list of url-safe base64 texts of 32 bytes each."""
        keys = []
        for part in (p.strip() for p in text.split(",")):
            try:
                key = _unb64(part)
            except (binascii.Error, ValueError):
                key = b""
            if len(key) != KEY_BYTES:
                raise SecretKeyError(
                    f"each key is {KEY_BYTES} random bytes in url-safe base64 (44 characters), "
                    "keys separated by commas"
                )
            keys.append(key)
        return cls(tuple(keys))

    @property
    def ids(self) -> tuple[str, ...]:
        """The ids of the keys, the sealing one first."""
        return tuple(key_id(key) for key in self.keys)

    @property
    def primary_id(self) -> str:
        return key_id(self.keys[0])

    def seal(self, plaintext: str, context: str) -> str:
        """`plaintext` sealed under the first key, to be opened only with the same `context`."""
        kek, kid = self.keys[0], self.primary_id
        aad = f"{_VERSION}.{kid}.{context}".encode()
        data_key = AESGCM.generate_key(bit_length=256)
        wrapped = _encrypt(kek, data_key, aad)
        body = _encrypt(data_key, plaintext.encode(), aad)
        return f"{_VERSION}.{kid}.{_b64(wrapped)}.{_b64(body)}"

    def open(self, sealed: str, context: str) -> str:
        """The plaintext of `sealed`; raises SecretKeyMissing or SecretUnreadable."""
        parts = sealed.split(".")
        if len(parts) != 5 or ".".join(parts[:2]) != _VERSION:
            raise SecretUnreadable(f"{context}: the stored value is not sealed")
        kid, wrapped, body = parts[2:]
        by_id = dict(zip(self.ids, self.keys, strict=True))
        if kid not in by_id:
            raise SecretKeyMissing(
                f"{context} was sealed under key {kid}, which is not among the configured "
                f"keys {list(self.ids)}"
            )
        aad = f"{_VERSION}.{kid}.{context}".encode()
        try:
            data_key = _decrypt(by_id[kid], _unb64(wrapped), aad)
            return _decrypt(data_key, _unb64(body), aad).decode()
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise SecretUnreadable(
                f"{context}: the sealed value does not open: it was altered, or copied "
                "from another row or column"
            ) from exc


def _encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _decrypt(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    return AESGCM(key).decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], aad)
