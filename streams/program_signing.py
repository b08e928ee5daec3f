"""Signatures of the programs topic: a definition is applied only if a key we hold signed it.

Whoever can produce to the topic could otherwise publish a program that pays out. So
`autostamp programs apply` signs each message, and the worker refuses one it cannot verify.

The signed content is the message key and the exact value bytes, each preceded by its length,
so a signed value cannot be replayed under another program id. The signature travels in
headers: `autostamp-signature: v1,<base64 HMAC-SHA256>` and `autostamp-key-id`, a fingerprint
that names the key without revealing it. Several keys allow a rotation: the first signs, every
one verifies. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ledger.errors import AutostampError
from rules import ProgramDefinition
from streams.kafka import ProducerRecord

SIGNATURE_HEADER = "autostamp-signature"
KEY_ID_HEADER = "autostamp-key-id"
MIN_KEY_LENGTH = 32
_CONTEXT = b"autostamp programs v1\n"

Headers = Sequence[tuple[str, bytes | None]] | Mapping[str, bytes | None]


class ProgramSignatureError(AutostampError):
    """A programs-topic message is not signed by a key we hold; the subclass says why."""


class UnsignedProgram(ProgramSignatureError):
    """The message carries no signature, or one that cannot be read."""


class UnknownSigningKey(ProgramSignatureError):
    """The message names a key this worker does not hold (never held, or rotated out)."""


class ProgramSignatureMismatch(ProgramSignatureError):
    """The signature does not match the message's key and value under the key it names."""


def key_id(key: str) -> str:
    """A short public name for a key: a fingerprint, from which the key cannot be found."""
    return hashlib.sha256(b"autostamp programs key id\n" + key.encode()).hexdigest()[:16]


def _signature(key: str, message_key: bytes | None, value: bytes) -> bytes:
    signed = bytearray(_CONTEXT)
    for part in (message_key or b"", value):
        signed += len(part).to_bytes(8, "big") + part
    return hmac.new(key.encode(), bytes(signed), hashlib.sha256).digest()


@dataclass(frozen=True)
class ProgramKeys:
    """The programs topic's keys: the first signs, every one verifies."""

    keys: tuple[str, ...] = field(repr=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("at least one key signs and verifies program definitions")
        if any(len(k) < MIN_KEY_LENGTH for k in self.keys):
            raise ValueError(f"a programs signing key has at least {MIN_KEY_LENGTH} characters")

    @classmethod
    def parse(cls, text: str) -> ProgramKeys:
        """Keys from their comma-separated list, the signing one first."""
        return cls(tuple(k.strip() for k in text.split(",") if k.strip()))

    def sign(self, message_key: bytes | None, value: bytes) -> tuple[tuple[str, bytes], ...]:
        """The headers that sign this message under the first key."""
        digest = base64.b64encode(_signature(self.keys[0], message_key, value))
        return ((SIGNATURE_HEADER, b"v1," + digest), (KEY_ID_HEADER, key_id(self.keys[0]).encode()))

    def verify(self, message_key: bytes | None, value: bytes, headers: Headers | None) -> None:
        """Accept the message or raise a ProgramSignatureError; the reason never shows a key."""
        found = _headers(headers)
        signature = _v1_signature(found.get(SIGNATURE_HEADER))
        if KEY_ID_HEADER not in found:
            raise UnsignedProgram(f"unsigned definition: no {KEY_ID_HEADER} header")
        named = found[KEY_ID_HEADER].decode(errors="replace")
        key = next((k for k in self.keys if key_id(k) == named), None)
        if key is None:
            raise UnknownSigningKey(
                f"wrong signature: key id {named[:32]!r} is not among the programs signing keys"
            )
        if not hmac.compare_digest(_signature(key, message_key, value), signature):
            raise ProgramSignatureMismatch(
                f"wrong signature: it does not match this message's key and value (key id {named})"
            )


def signed_records(
    topic: str, programs: Iterable[ProgramDefinition], keys: ProgramKeys
) -> list[ProducerRecord]:
    """Definitions as messages of the programs topic: keyed by program id, and signed."""
    records = []
    for program in programs:
        key, value = program.id.encode(), program.model_dump_json().encode()
        records.append(ProducerRecord(topic, value, key, keys.sign(key, value)))
    return records


def _headers(headers: Headers | None) -> dict[str, bytes]:
    items = headers.items() if isinstance(headers, Mapping) else (headers or ())
    return {name.lower(): value for name, value in items if value is not None}


def _v1_signature(header: bytes | None) -> bytes:
    if header is None:
        raise UnsignedProgram(f"unsigned definition: no {SIGNATURE_HEADER} header")
    version, _, encoded = header.partition(b",")
    try:
        decoded = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if version.strip() != b"v1" or not decoded:
        raise UnsignedProgram(f"unsigned definition: {SIGNATURE_HEADER} is not v1,<base64>")
    return decoded
