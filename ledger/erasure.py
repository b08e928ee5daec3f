"""Erasing a member: every identifier of theirs in the ledger becomes one stable pseudonym.

The money records stay whole: collections, stamps, rewards and counters keep their ids,
amounts and links, and the purchase events and undos keep their member column in step with
the collections (under the pseudonym), so `autostamp reconcile` finds what it found before.
What identifies the member goes: the member id everywhere, the merchant of each stamp, the
card and merchant of the dead letters naming them, and their member tokens (revoked).

The pseudonym is `erased_` and 32 hex digits of an HMAC-SHA256 of the member id under a key
derived from the first key of AUTOSTAMP_SECRET_KEY: the same member always gets the same one
while that key is first, and it cannot be turned back into the member id without the key.

Erasing changes who can be identified, never what the member's later events do to the money.
Their collections are unenrolled, and the pseudonym is kept (`erased_members`): the worker
computes the pseudonyms of every member id it reads, under each key of the keyring
(`Pseudonyms`), and applies an erased member's events to the renamed rows, so a refund sent
after the erasure still voids. Erasure holds the programs lock, which every batch holds
shared, so no batch reads the erasures before it commits and applies its events after.

Webhook messages already attempted are the receivers' copies and keep their bytes; those
never sent yet are rewritten. Erasing again changes only what arrived since.

Only the member id as a whole value is replaced, never where it is part of another: erasing
`m1` leaves `m10`, `m1-shop` and `"m1 coffee"` as they are. In JSON that is a string equal to
the id; in bytes that are not JSON and in dead-letter reasons, the id written as a JSON string
(`"m1"`, as PostgreSQL quotes a value it refuses too).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.catalog import lock_programs
from ledger.pseudonyms import Pseudonyms, pseudonym
from ledger.sealing import Keyring

# Under a card or merchant object of a document naming the member, every text is cleared.
_IDENTIFYING = frozenset({"card", "merchant"})


_ERASED = text(
    """
    SELECT pseudonym FROM erased_members
    WHERE pseudonym = ANY(ARRAY(SELECT json_array_elements_text(CAST(:names AS json))))
    """
)


async def erased_names(
    conn: AsyncConnection, pseudonyms: Pseudonyms, member_ids: set[str]
) -> dict[str, str]:
    """The pseudonym of each of `member_ids` that was erased: one statement."""
    if not member_ids or not pseudonyms.keys:
        return {}
    named = {name: m for m in member_ids for name in pseudonyms.candidates(m)}
    rows = await conn.execute(_ERASED, {"names": orjson.dumps(sorted(named)).decode()})
    return {named[name]: name for name in rows.scalars()}


@dataclass(frozen=True)
class Erasure:
    """What one erase changed, row by row; every count is 0 when nothing was left."""

    pseudonym: str
    collections: int = 0
    stamps: int = 0
    purchase_events: int = 0
    undos: int = 0
    member_tokens: int = 0
    idempotent_requests: int = 0
    dead_letters: int = 0
    webhook_messages: int = 0

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if k != "pseudonym"}


async def erase_member(
    conn: AsyncConnection, keyring: Keyring, member_id: str, now: datetime
) -> Erasure:
    """Pseudonymise `member_id` everywhere in the ledger, in the caller's transaction."""
    alias = pseudonym(keyring, member_id)
    names = {"m": member_id, "p": alias, "now": now}
    # Every batch holds the programs lock shared while it reads the erasures and applies its
    # events: one of the member's commits first, or maps their events to the pseudonym.
    await lock_programs(conn)
    await conn.execute(_LOCK, names)
    await conn.execute(_RECORD, names)
    rows = {name: (await conn.execute(sql, names)).rowcount for name, sql in _RENAMES.items()}
    return Erasure(
        pseudonym=alias,
        **rows,
        idempotent_requests=await _scrub_answers(conn, member_id, alias),
        dead_letters=await _scrub_dead_letters(conn, member_id, alias),
        webhook_messages=await _scrub_unsent_messages(conn, member_id, alias),
    )


_LOCK = text("SELECT id FROM stamp_collections WHERE member_id = :m ORDER BY id FOR UPDATE")
_RECORD = text("INSERT INTO erased_members (pseudonym) VALUES (:p) ON CONFLICT DO NOTHING")
_RENAMES = {
    # An erased member's collections stamp nothing new; undos still void their stamps.
    "collections": text(
        """
        UPDATE stamp_collections
        SET member_id = :p, unenrolled_at = coalesce(unenrolled_at, :now), updated_at = :now
        WHERE member_id = :m
        """
    ),
    "stamps": text(
        """
        UPDATE stamps SET merchant_id = '', merchant_name = ''
        WHERE collection_id IN (SELECT id FROM stamp_collections WHERE member_id = :p)
          AND (merchant_id <> '' OR merchant_name <> '')
        """
    ),
    "purchase_events": text("UPDATE purchase_events SET member_id = :p WHERE member_id = :m"),
    "undos": text("UPDATE undos SET member_id = :p WHERE member_id = :m"),
    # A token's member column must name someone: the pseudonym, and the token is revoked.
    "member_tokens": text(
        """
        UPDATE api_keys SET member_id = :p, revoked_at = coalesce(revoked_at, :now)
        WHERE member_id = :m
        """
    ),
}


def scrub(document: Any, member_id: str, alias: str, naming: bool = False) -> Any:
    """A JSON document with the member id replaced, and the card and merchant cleared in every
    object that names the member (or lies inside one that does)."""
    if isinstance(document, str):
        return alias if document == member_id else document
    if isinstance(document, list):
        return [scrub(item, member_id, alias, naming) for item in document]
    if isinstance(document, dict):
        naming = naming or member_id in document.values()
        return {
            key: _cleared(value)
            if naming and key in _IDENTIFYING
            else scrub(value, member_id, alias, naming)
            for key, value in document.items()
        }
    return document


def _cleared(value: Any) -> Any:
    if isinstance(value, str):
        return ""
    if isinstance(value, list):
        return [_cleared(item) for item in value]
    if isinstance(value, dict):
        return {key: _cleared(item) for key, item in value.items()}
    return value


def scrub_bytes(value: bytes, member_id: str, alias: str) -> bytes:
    """A message's bytes scrubbed as JSON; in bytes that are not JSON (a message cut short,
    say), the member id is replaced where it stands as a whole JSON string."""
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        return scrub_quoted(value, member_id, alias)
    return orjson.dumps(scrub(document, member_id, alias))


def scrub_quoted(value: bytes, member_id: str, alias: str) -> bytes:
    """`value` with the member id made the alias wherever it stands as a JSON string.

    Text that merely contains the id (`"m10"`, `m1-shop`, `"x\\"m1"`) is left as it is.
    """
    # A quote after a backslash is inside a string or ends one: it never opens the member's.
    whole = re.compile(rb"(?<!\\)" + re.escape(orjson.dumps(member_id)))
    quoted_alias = orjson.dumps(alias)
    return whole.sub(lambda _: quoted_alias, value)


async def _scrub_answers(conn: AsyncConnection, member_id: str, alias: str) -> int:
    """Kept answers to idempotent requests: a retry then gets the answer with the pseudonym."""
    rows = await conn.execute(
        text(
            "SELECT api_key_id, idempotency_key, answer FROM idempotent_requests "
            "WHERE strpos(answer, :m) > 0 FOR UPDATE"
        ),
        {"m": member_id},
    )
    changed = 0
    for key_id, key, answer in rows.all():
        scrubbed = scrub_bytes(answer.encode(), member_id, alias).decode()
        if scrubbed != answer:
            changed += 1
            await conn.execute(
                text(
                    "UPDATE idempotent_requests SET answer = :a "
                    "WHERE api_key_id = :k AND idempotency_key = :i"
                ),
                {"a": scrubbed, "k": key_id, "i": key},
            )
    return changed


async def _scrub_dead_letters(conn: AsyncConnection, member_id: str, alias: str) -> int:
    """Dead letters whose key, bytes or reason carry the member id."""
    rows = await conn.execute(
        text(
            """
            SELECT id, key, value, reason FROM dead_letters
            WHERE position(CAST(:b AS bytea) IN value) > 0 OR key = CAST(:b AS bytea)
               OR strpos(reason, :m) > 0
            FOR UPDATE
            """
        ),
        {"m": member_id, "b": member_id.encode()},
    )
    changed = 0
    for letter_id, key, value, reason in rows.all():
        scrubbed = {
            "id": letter_id,
            "k": alias.encode() if key == member_id.encode() else key,
            "v": scrub_bytes(value, member_id, alias),
            "r": scrub_quoted(reason.encode(), member_id, alias).decode(),
        }
        if (scrubbed["k"], scrubbed["v"], scrubbed["r"]) != (key, value, reason):
            changed += 1
            await conn.execute(
                text("UPDATE dead_letters SET key = :k, value = :v, reason = :r WHERE id = :id"),
                scrubbed,
            )
    return changed


async def _scrub_unsent_messages(conn: AsyncConnection, member_id: str, alias: str) -> int:
    """Outbox messages no attempt has sent yet: what a receiver may hold keeps its bytes."""
    rows = await conn.execute(
        text(
            """
            SELECT m.id, m.body FROM webhook_messages m
            WHERE strpos(m.body, :m) > 0 AND NOT EXISTS (
                SELECT 1 FROM webhook_deliveries d JOIN webhook_attempts a ON a.delivery_id = d.id
                WHERE d.message_id = m.id)
            FOR UPDATE OF m
            """
        ),
        {"m": member_id},
    )
    changed = 0
    for message_id, body in rows.all():
        scrubbed = scrub_bytes(body.encode(), member_id, alias).decode()
        if scrubbed != body:
            changed += 1
            await conn.execute(
                text("UPDATE webhook_messages SET body = :b WHERE id = :id"),
                {"b": scrubbed, "id": message_id},
            )
    return changed
