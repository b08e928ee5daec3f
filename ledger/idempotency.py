"""Idempotency keys: a retried request gets the first answer instead of doing the work twice.

A caller sends `Idempotency-Key` with a request; the first success is kept for `KEEP_FOR`
under (API key, idempotency key), in the transaction that did the work. A retry with the same
key and the same body gets that answer; the same key with another body is refused, as the
IETF draft on the `Idempotency-Key` header asks. Two requests with one key at once serialise
on the row's unique key: the second waits for the first and then reads its answer. Failures
are not kept (their transaction rolled back, so nothing happened): a retry does the work anew.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.errors import AutostampError

KEEP_FOR = timedelta(hours=24)
MAX_KEY_CHARS = 255


class IdempotencyKeyReused(AutostampError):
    """The idempotency key was used before with a different request body."""


@dataclass(frozen=True)
class Claim:
    """What a request holding an idempotency key may do: work, or answer what was kept."""

    kept_answer: str | None


def request_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


# Take the key, or find it taken. An answer older than KEEP_FOR is forgotten (the row is taken
# over); rows of the same API key that old are deleted on the way, so the table stays small.
_CLAIM = text(
    """
    WITH expired AS (
        DELETE FROM idempotent_requests
        WHERE api_key_id = :api_key_id AND created_at < now() - CAST(:keep AS interval)
          AND idempotency_key <> :idempotency_key
    )
    INSERT INTO idempotent_requests AS r (api_key_id, idempotency_key, request_sha256)
    VALUES (:api_key_id, :idempotency_key, :digest)
    ON CONFLICT (api_key_id, idempotency_key) DO UPDATE
        SET request_sha256 = EXCLUDED.request_sha256, answer = NULL, created_at = now()
        WHERE r.created_at < now() - CAST(:keep AS interval)
    RETURNING 1
    """
)
_KEPT = text(
    """
    SELECT request_sha256, answer FROM idempotent_requests
    WHERE api_key_id = :api_key_id AND idempotency_key = :idempotency_key
    """
)
_KEEP = text(
    """
    UPDATE idempotent_requests SET answer = :answer
    WHERE api_key_id = :api_key_id AND idempotency_key = :idempotency_key
    """
)


async def claim(conn: AsyncConnection, api_key_id: str, idempotency_key: str, digest: str) -> Claim:
    """Take `idempotency_key` for this request, or get the answer kept for it.

    Raises IdempotencyKeyReused when the key came with another body before.
    """
    names = {"api_key_id": api_key_id, "idempotency_key": idempotency_key}
    keep = f"{int(KEEP_FOR.total_seconds())} seconds"
    taken = (await conn.execute(_CLAIM, {**names, "digest": digest, "keep": keep})).first()
    if taken is not None:
        return Claim(kept_answer=None)
    row = (await conn.execute(_KEPT, names)).one()
    if row.request_sha256 != digest:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used with another request body; use a new key"
        )
    return Claim(kept_answer=row.answer)


async def keep(conn: AsyncConnection, api_key_id: str, idempotency_key: str, answer: str) -> None:
    """Keep the answer of the request that claimed the key, in its transaction."""
    names = {"api_key_id": api_key_id, "idempotency_key": idempotency_key}
    await conn.execute(_KEEP, {**names, "answer": answer})
