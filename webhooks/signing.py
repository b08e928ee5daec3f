"""Standard Webhooks signatures: sign what the dispatcher sends, verify what a consumer receives.

The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; each signature is
`v1,` and the base64 of its HMAC-SHA256 under one secret (`whsec_` and the base64 of the
key bytes). Several signatures, space-separated, let a consumer rotate its secret. Pure:
the time is always a parameter.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from ledger.errors import AutostampError
from ledger.webhook_endpoints import SECRET_PREFIX

DEFAULT_TOLERANCE = timedelta(minutes=5)
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class InvalidSecret(ValueError):
    """A signing secret that is not `whsec_` followed by base64 key bytes."""


class WebhookVerificationError(AutostampError):
    """A received webhook is not to be trusted; the subclass says why."""


class MalformedWebhook(WebhookVerificationError):
    """A `webhook-*` header is missing or unreadable."""


class StaleTimestamp(WebhookVerificationError):
    """`webhook-timestamp` is outside the tolerance around now: a replay or a skewed clock."""


class SignatureMismatch(WebhookVerificationError):
    """No `v1` signature matches the body under the secret."""


def secret_key(secret: str) -> bytes:
    """The key bytes of a `whsec_...` secret (the prefix may be left out)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSecret("a webhook secret is 'whsec_' followed by base64") from exc
    if not key:
        raise InvalidSecret("a webhook secret may not be empty")
    return key


def unix_seconds(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("webhook timestamps need an aware datetime")
    return int(moment.timestamp())


def _signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(msg_id: str, timestamp: datetime, body: bytes, secrets: Sequence[str]) -> dict[str, str]:
    """The three `webhook-*` headers, with one `v1` signature per secret, in the order given."""
    if not secrets:
        raise ValueError("at least one secret signs a webhook")
    seconds = unix_seconds(timestamp)
    signatures = (
        "v1," + base64.b64encode(_signature(secret_key(s), msg_id, seconds, body)).decode()
        for s in secrets
    )
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(seconds),
        "webhook-signature": " ".join(signatures),
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name and value.strip():
            return value.strip()
    raise MalformedWebhook(f"the {name} header is missing")


def _v1_signatures(header: str) -> list[bytes]:
    found = []
    for entry in header.split():
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue  # another scheme (`v1a`), or garbage next to a good signature
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if decoded:
            found.append(decoded)
    if not found:
        raise MalformedWebhook("webhook-signature holds no readable v1 signature")
    return found


def _checked_timestamp(header: str, now: datetime, tolerance: timedelta) -> int:
    if not _TIMESTAMP.fullmatch(header):
        raise MalformedWebhook("webhook-timestamp is not whole seconds since the epoch")
    timestamp = int(header)
    if abs(timestamp - now.timestamp()) > tolerance.total_seconds():
        raise StaleTimestamp(f"webhook-timestamp {timestamp} is more than {tolerance} from now")
    return timestamp


def verify(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    now: datetime,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> None:
    """Accept a received webhook or raise a WebhookVerificationError; `body` is the raw bytes."""
    msg_id = _header(headers, "webhook-id")
    timestamp = _checked_timestamp(_header(headers, "webhook-timestamp"), now, tolerance)
    candidates = _v1_signatures(_header(headers, "webhook-signature"))
    expected = _signature(secret_key(secret), msg_id, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureMismatch("no webhook signature matches this body and secret")


def signing_secrets(
    current: str, previous: str | None, previous_expires_at: datetime | None, now: datetime
) -> tuple[str, ...]:
    """The secrets that sign at `now`: the current one, and the rotated-out one during its grace."""
    if previous is not None and previous_expires_at is not None and now < previous_expires_at:
        return (current, previous)
    return (current,)
