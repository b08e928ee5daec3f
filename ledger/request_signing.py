"""Signed ingest requests: `X-Signature: v1=<hex HMAC-SHA256>` over `<X-Timestamp>.<body>`.

Pure: no I/O, no clock (`now` is a parameter). A signed ingest key holds a secret
(`isec_...`), shown once and stored sealed with the keyring that seals webhook secrets, since
verifying needs the secret itself and not a digest of it. The HMAC key is the secret's text
as UTF-8; the signed message is the decimal unix timestamp of `X-Timestamp`, a dot, and the
raw body, byte for byte. A timestamp more than `WINDOW` from now, in either direction, is
refused; a signature used once is refused again (`ledger.ingestion.remember_signature`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from ledger.errors import RequestSignatureRefused
from ledger.sealing import Keyring

SECRET_TAG = "isec_"  # noqa: S105 (a tag, not a secret)
VERSION = "v1"
WINDOW = timedelta(minutes=5)
_MAX_TIMESTAMP_DIGITS = 12


def new_signing_secret() -> str:
    return SECRET_TAG + secrets.token_urlsafe(32)


def signing_context(key_id: str) -> str:
    """What a sealed signing secret is bound to: its table, column and key."""
    return f"api_keys.signing_secret/{key_id}"


def seal_signing_secret(keyring: Keyring, key_id: str, secret: str) -> str:
    return keyring.seal(secret, signing_context(key_id))


def open_signing_secret(keyring: Keyring, key_id: str, sealed: str) -> str:
    """The `isec_` secret; raises SecretKeyMissing or SecretUnreadable."""
    return keyring.open(sealed, signing_context(key_id))


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Signature` value of `body` sent at `timestamp` (unix seconds)."""
    message = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"{VERSION}={digest}"


def verify(
    secret: str, timestamp: str | None, sent: str | None, body: bytes, now: datetime
) -> tuple[str, datetime]:
    """The signature's digest and signing time, if `sent` signs `body` at `timestamp`.

    Raises RequestSignatureRefused saying what is wrong: a header missing, a timestamp that
    is not unix seconds or is outside the window, a signature not in the `v1=<hex>` form or
    not matching.
    """
    if not timestamp or not sent:
        raise RequestSignatureRefused(
            "this key signs its requests: send X-Timestamp (unix seconds) and "
            "X-Signature (v1=<hex HMAC-SHA256 of '<timestamp>.<body>'>)"
        )
    timestamp = timestamp.strip()
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > _MAX_TIMESTAMP_DIGITS:
        raise RequestSignatureRefused("X-Timestamp must be unix seconds, e.g. 1767225600")
    seconds = int(timestamp)
    # Compared as numbers first: a time past the year 9999 has no datetime, and must be a 401.
    if abs(now.timestamp() - seconds) > WINDOW.total_seconds():
        raise RequestSignatureRefused(
            f"X-Timestamp is more than {int(WINDOW.total_seconds())} seconds from the "
            "server's time: sign each request when it is sent"
        )
    signed_at = datetime.fromtimestamp(seconds, UTC)
    expected = signature(secret, seconds, body)
    if not hmac.compare_digest(sent.strip().encode(), expected.encode()):
        raise RequestSignatureRefused(
            "X-Signature does not match the body and X-Timestamp for this key's secret"
        )
    return expected.removeprefix(f"{VERSION}="), signed_at
