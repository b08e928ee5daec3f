"""What an erased member is called: a keyed hash of the member id, under each key of the keyring.

Pure: the worker computes these for every member id it reads, to apply an erased member's
later events to the renamed rows (`ledger.erasure`).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from ledger.sealing import Keyring

PSEUDONYM_PREFIX = "erased_"


def pseudonym(keyring: Keyring, member_id: str) -> str:
    """The member's stable pseudonym: irreversible without the key."""
    return Pseudonyms.of(keyring).candidates(member_id)[0]


@dataclass(frozen=True)
class Pseudonyms:
    """What a member id is called once erased, under each key of the keyring (the first
    names new erasures; the others find those made before a key was rotated in). It holds
    keys derived for this use only, so the worker needs no key that opens secrets."""

    keys: tuple[bytes, ...]

    @classmethod
    def of(cls, keyring: Keyring) -> Pseudonyms:
        return cls(tuple(_derived(key) for key in keyring.keys))

    def candidates(self, member_id: str) -> tuple[str, ...]:
        return tuple(_named(key, member_id) for key in self.keys)


def _derived(key: bytes) -> bytes:
    return hmac.new(key, b"autostamp member pseudonym v1", hashlib.sha256).digest()


def _named(key: bytes, member_id: str) -> str:
    return PSEUDONYM_PREFIX + hmac.new(key, member_id.encode(), hashlib.sha256).hexdigest()[:32]
