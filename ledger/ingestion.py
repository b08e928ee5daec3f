"""Transactions sent over HTTP (`POST /ingest.v1/transactions`): judged, put on the stream.

Each item is judged exactly as the worker judges a message of the transactions topic
(`rules.parse_transaction`, its reasons included); the valid ones are produced, keyed by
member, and only once the broker acknowledged all of them is any reported accepted. The
ledger stays the one place that decides what stamps: a transaction sent twice is consumed
twice and stamps once. The ids accepted here are remembered only to tell a caller, per item,
that it sent one before.

Signed requests (`ledger.request_signing`) are checked here against the key's sealed secret,
and each signature is remembered until its timestamp leaves the window, so that a request
captured on the way cannot be sent again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import orjson
from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.database import transaction
from ledger.errors import RequestSignatureRefused
from ledger.keys import ApiKeyRecord
from ledger.request_signing import WINDOW, open_signing_secret, verify
from ledger.schema import IngestedTransaction, IngestSignature
from ledger.sealing import Keyring
from rules import CardTransaction, InvalidTransaction, parse_transaction

_MAX_ID_CHARS = 200


class TransactionSink(Protocol):
    """Where accepted transactions go: the transactions topic."""

    async def put(self, messages: Sequence[tuple[bytes | None, bytes]]) -> None:
        """Produce each (key, value) and return once the broker acknowledged every one.

        Raises `BrokerError` when it did not, within the sink's deadline.
        """


@dataclass(frozen=True)
class ItemOutcome:
    """What became of one item: accepted (and whether its id was accepted before), or refused."""

    index: int
    id: str | None
    accepted: bool
    reason: str | None = None
    seen_before: bool | None = None


def judge(
    items: Sequence[bytes],
) -> tuple[list[tuple[int, CardTransaction, bytes]], list[ItemOutcome]]:
    """The valid items (index, transaction, bytes) and the refusals, each with its reason."""
    valid: list[tuple[int, CardTransaction, bytes]] = []
    refused: list[ItemOutcome] = []
    for index, raw in enumerate(items):
        try:
            valid.append((index, parse_transaction(raw), raw))
        except InvalidTransaction as exc:
            refused.append(ItemOutcome(index, _claimed_id(raw), False, reason=str(exc)))
    return valid, refused


async def ingest(
    engine: AsyncEngine, sink: TransactionSink, items: Sequence[bytes]
) -> list[ItemOutcome]:
    """Judge `items`, produce the valid ones and wait for the broker; one outcome per item.

    Raises `BrokerError` (nothing accepted) when the broker does not acknowledge them all.
    """
    valid, refused = judge(items)
    if valid:
        await sink.put([(tx.member_id.encode(), raw) for _, tx, raw in valid])
    first_time = await remember_ids(engine, [tx.id for _, tx, _ in valid])
    outcomes = list(refused)
    for index, tx, _ in valid:
        seen_before = tx.id not in first_time
        first_time.discard(tx.id)  # a repeat within the request was seen before too
        outcomes.append(ItemOutcome(index, tx.id, True, seen_before=seen_before))
    return sorted(outcomes, key=lambda outcome: outcome.index)


async def remember_ids(engine: AsyncEngine, ids: Sequence[str]) -> set[str]:
    """Record the ids accepted; those never accepted before. One statement."""
    if not ids:
        return set()
    stmt = (
        insert(IngestedTransaction)
        .values([{"transaction_id": id} for id in dict.fromkeys(ids)])
        .on_conflict_do_nothing()
        .returning(IngestedTransaction.transaction_id)
    )
    async with transaction(engine) as conn:
        return set((await conn.execute(stmt)).scalars())


async def check_signature(
    engine: AsyncEngine,
    keyring: Keyring,
    key: ApiKeyRecord,
    headers: tuple[str | None, str | None],
    body: bytes,
    now: datetime,
) -> None:
    """Admit a signed key's request once: `headers` are X-Timestamp and X-Signature.

    Raises RequestSignatureRefused for a missing, stale, wrong or already used signature.
    """
    assert key.signing_secret is not None
    secret = open_signing_secret(keyring, key.id, key.signing_secret)
    digest, signed_at = verify(secret, *headers, body, now)
    await remember_signature(engine, digest, signed_at, now)


async def remember_signature(
    engine: AsyncEngine, digest: str, signed_at: datetime, now: datetime
) -> None:
    """Refuse a signature used before; forget those whose timestamp left the window.

    Uniqueness is the primary key: of two requests racing with one signature, one inserts.
    """
    # Twice the window: a server whose clock is a little behind still refuses a replay.
    forget = delete(IngestSignature).where(IngestSignature.signed_at < now - 2 * WINDOW)
    stmt = (
        insert(IngestSignature)
        .values(signature=digest, signed_at=signed_at)
        .on_conflict_do_nothing()
        .returning(IngestSignature.signature)
    )
    async with transaction(engine) as conn:
        await conn.execute(forget)
        first = (await conn.execute(stmt)).one_or_none()
    if first is None:
        raise RequestSignatureRefused(
            "this signature was used before: sign each request, a retry included, anew"
        )


def _claimed_id(raw: bytes) -> str | None:
    """The id a refused item names, if it names one we can show back."""
    try:
        item = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    claimed = item.get("id") if isinstance(item, dict) else None
    return claimed if isinstance(claimed, str) and len(claimed) <= _MAX_ID_CHARS else None
