"""Members' rights through the API: unenrolling, enrolling again, and erasure."""

from __future__ import annotations

import json
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.database import transaction
from ledger.erasure import pseudonym
from ledger.events import EVENT_TYPES
from ledger.keys import Scope
from ledger.reconcile import reconcile
from ledger.webhook_secrets import seal_secret
from tests.publisher_api.conftest import add_program, add_reward, add_stamp, bearer, issue_key
from tests.webhooks.support import TEST_KEYRING

CREATE = "/publisher.v1/wallet.stamp-collection/create"
DELETE = "/publisher.v1/wallet.stamp-collection/delete"
GET = "/publisher.v1/wallet.stamp-collection/get"
LIST = "/publisher.v1/wallet.stamp-collection/list"
STAMPS = "/publisher.v1/wallet.stamp-collection/stamps"
ERASE = "/publisher.v1/member/erase"
MEMBER = "m-erase-7f3a"


async def call(client: httpx.AsyncClient, url: str, key: str, **body: Any) -> httpx.Response:
    return await client.post(url, json=body, headers=bearer(key))


async def enroll(
    client: httpx.AsyncClient, key: str, member: str = "m_1", program: str = "lp_coffee"
) -> str:
    answer = await call(client, CREATE, key, loyalty_program_id=program, member_id=member)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


async def subscribe(engine: AsyncEngine) -> None:
    """An endpoint that hears every event: the outbox writes only what someone hears."""
    async with transaction(engine) as conn:
        await conn.execute(
            text(
                "INSERT INTO webhook_endpoints (id, url, event_types, secret) VALUES "
                "('ep_all', 'https://hooks.example.com/all', CAST(:types AS jsonb), :secret)"
            ),
            {
                "secret": seal_secret(TEST_KEYRING, "ep_all", "secret", "whsec_eA=="),
                "types": json.dumps(list(EVENT_TYPES)),
            },
        )


async def event_types(engine: AsyncEngine) -> list[str]:
    async with transaction(engine) as conn:
        rows = await conn.execute(text("SELECT event_type FROM webhook_messages ORDER BY 1"))
        return [r.event_type for r in rows]


# --- unenrolling -----------------------------------------------------------------------


async def test_unenrolling_keeps_the_history_readable_and_answers_the_same_twice(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str, read_key: str
) -> None:
    await subscribe(async_engine)
    await add_program(async_engine, "lp_coffee")
    collection = await enroll(client, full_key)
    await add_stamp(async_engine, collection, "p1")

    first = await call(client, DELETE, full_key, id=collection)
    second = await call(client, DELETE, full_key, id=collection)

    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert first.json()["status"] == "unenrolled" and first.json()["unenrolled_at"]
    assert (await call(client, GET, read_key, id=collection)).json() == first.json()
    stamps = await call(client, STAMPS, read_key, stamp_collection_id=collection)
    assert [s["purchase_id"] for s in stamps.json()["data"]] == ["p1"]
    listed = await call(client, LIST, read_key, member_id="m_1")
    assert listed.json()["data"] == []
    everything = await call(client, LIST, read_key, member_id="m_1", include_unenrolled=True)
    assert [c["id"] for c in everything.json()["data"]] == [collection]
    assert await event_types(async_engine) == [
        "stamp_collection.created",
        "stamp_collection.deleted",
    ]


async def test_enrolling_again_after_unenrolling_starts_a_new_collection(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str, read_key: str
) -> None:
    await add_program(async_engine, "lp_coffee")
    old = await enroll(client, full_key)
    await call(client, DELETE, full_key, id=old)

    new = await enroll(client, full_key)
    twice = await call(client, CREATE, full_key, loyalty_program_id="lp_coffee", member_id="m_1")

    assert new != old
    assert twice.status_code == 409
    assert twice.json()["error"]["details"]["stamp_collection_id"] == new
    listed = await call(client, LIST, read_key, member_id="m_1")
    assert [c["id"] for c in listed.json()["data"]] == [new]


async def test_unenrolling_an_unknown_collection_is_not_found(
    client: httpx.AsyncClient, full_key: str
) -> None:
    answer = await call(client, DELETE, full_key, id="sc_AAAAAAAAAAAAAAAAAAAAAAAA")
    assert answer.status_code == 404


@pytest.mark.parametrize(
    ("url", "allowed"),
    [(DELETE, {Scope.FULL, Scope.ADMIN}), (ERASE, {Scope.ADMIN})],
)
async def test_only_full_or_admin_keys_unenroll_and_only_admin_keys_erase(
    client: httpx.AsyncClient,
    async_engine: AsyncEngine,
    full_key: str,
    url: str,
    allowed: set[Scope],
) -> None:
    await add_program(async_engine, "lp_coffee")
    collection = await enroll(client, full_key)
    body = {"id": collection} if url == DELETE else {"member_id": "m_1"}
    minted = await call(client, "/publisher.v1/member-token/create", full_key, member_id="m_1")
    callers = {"member": minted.json()["token"]}
    for scope in (Scope.ENROLL, Scope.READ, Scope.FULL, Scope.ADMIN):
        callers[scope.value] = await issue_key(async_engine, scope)

    statuses = {
        name: (await call(client, url, key, **body)).status_code for name, key in callers.items()
    }

    assert statuses == {name: 200 if name in allowed else 403 for name in callers}


# --- erasure ---------------------------------------------------------------------------


async def _member_everywhere(client: httpx.AsyncClient, engine: AsyncEngine, full_key: str) -> str:
    """The member in every table that can hold them; returns their coffee collection."""
    await subscribe(engine)
    for program in ("lp_coffee", "lp_tea", "lp_other"):
        await add_program(engine, program)
    headers = {**bearer(full_key), "Idempotency-Key": "enroll-1"}
    body = {"loyalty_program_id": "lp_coffee", "member_id": MEMBER}
    coffee = (await client.post(CREATE, json=body, headers=headers)).json()["id"]
    await enroll(client, full_key, MEMBER, "lp_tea")
    await call(client, "/publisher.v1/member-token/create", full_key, member_id=MEMBER)
    other = await enroll(client, full_key, "m-other", "lp_other")
    for purchase in ("p-rw_1", "p2", "p3", "p4", "p5"):
        await add_stamp(engine, coffee, purchase, merchant_id="mer_bean")
    await add_stamp(engine, other, "p-o", merchant_id="mer_bean")
    await add_reward(engine, "rw_1", coffee, cycle=1)
    async with transaction(engine) as conn:
        await _history(conn, coffee, other)
    return str(coffee)


async def _history(conn: AsyncConnection, coffee: str, other: str) -> None:
    await conn.execute(
        text("UPDATE stamp_collections SET cycle = 2 WHERE id = :c; "),
        {"c": coffee},
    )
    await conn.execute(
        text("UPDATE stamp_collections SET unredeemed_purchases = 1 WHERE id = :o"), {"o": other}
    )
    source = "'transactions', 0, 1"
    await conn.execute(
        text(
            "INSERT INTO purchase_events (id, purchase_id, member_id, type, source_topic, "
            f"source_partition, source_offset) VALUES ('tx-p2', 'p2', :m, 'clearing', {source})"
        ),
        {"m": MEMBER},
    )
    await conn.execute(
        text(
            "INSERT INTO undos (id, original_id, member_id, type, source_topic, "
            f"source_partition, source_offset) VALUES ('r9', 'p-elsewhere', :m, 'refund', {source})"
        ),
        {"m": MEMBER},
    )
    letter = {
        "id": "tx-bad",
        "member_id": MEMBER,
        "amount": -1,
        "merchant": {"id": "mer_bean", "name": "Bean There", "mcc": "5814"},
        "card": {"id": "card_77", "scheme": "visa"},
    }
    await conn.execute(
        text(
            "INSERT INTO dead_letters (source_topic, source_partition, source_offset, key, value, "
            "size, sha256, reason) VALUES ('transactions', 0, 9, :k, :v, 1, :h, 'amount: > 0')"
        ),
        {"k": MEMBER.encode(), "v": orjson.dumps(letter), "h": "0" * 64},
    )
    # The coffee enrollment's event was attempted once: the receiver may hold it.
    await conn.execute(
        text(
            "INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, latency_ms) "
            "SELECT d.id, now(), 500, 3 FROM webhook_deliveries d "
            "JOIN webhook_messages m ON m.id = d.message_id "
            "WHERE strpos(m.body, :c) > 0"
        ),
        {"c": coffee},
    )


async def _holding(engine: AsyncEngine, value: str) -> list[str]:
    """Every (table.column) of the database with a row whose text, JSON or bytes hold `value`."""
    async with transaction(engine) as conn:
        columns = await conn.execute(
            text(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public' AND data_type IN "
                "('text', 'character varying', 'jsonb', 'json', 'bytea')"
            )
        )
        found = []
        for table, column, kind in columns.all():
            where = (
                f'position(CAST(:b AS bytea) IN "{column}") > 0'
                if kind == "bytea"
                else f'strpos(CAST("{column}" AS text), :v) > 0'
            )
            sql = f'SELECT count(*) FROM "{table}" WHERE {where}'
            if (await conn.execute(text(sql), {"v": value, "b": value.encode()})).scalar_one():
                found.append(f"{table}.{column}")
        return sorted(found)


async def _totals(engine: AsyncEngine) -> tuple[Any, ...]:
    async with transaction(engine) as conn:
        row = await conn.execute(
            text(
                "SELECT (SELECT count(*) FROM stamps), (SELECT count(*) FROM stamps "
                "WHERE status = 'live'), (SELECT count(*) FROM rewards), "
                "(SELECT sum(amount) FROM rewards), (SELECT count(*) FROM stamp_collections)"
            )
        )
        return tuple(row.one())


async def test_erasing_a_member_leaves_no_trace_of_them_but_keeps_the_money_records(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str, admin_key: str
) -> None:
    coffee = await _member_everywhere(client, async_engine, full_key)
    totals = await _totals(async_engine)

    answer = await call(client, ERASE, admin_key, member_id=MEMBER)

    assert answer.status_code == 200, answer.text
    alias = pseudonym(TEST_KEYRING, MEMBER)
    assert answer.json() == {
        "pseudonym": alias,
        "changed": {
            "collections": 2,
            "stamps": 5,
            "purchase_events": 1,
            "undos": 1,
            "member_tokens": 1,
            "idempotent_requests": 1,
            "dead_letters": 1,
            "webhook_messages": 1,
        },
    }
    # Only the message a receiver may already hold keeps its bytes.
    assert await _holding(async_engine, MEMBER) == ["webhook_messages.body"]
    assert await _holding(async_engine, "card_77") == []
    assert await _holding(async_engine, "m-other") != []
    assert await _totals(async_engine) == totals
    async with transaction(async_engine) as conn:
        assert (await reconcile(conn)).differences == []
    kept = await call(client, GET, admin_key, id=coffee)
    assert kept.json()["member_id"] == alias
    retried = await client.post(
        CREATE,
        json={"loyalty_program_id": "lp_coffee", "member_id": MEMBER},
        headers={**bearer(full_key), "Idempotency-Key": "enroll-1"},
    )
    assert retried.json()["member_id"] == alias


async def test_erasing_twice_answers_the_same_pseudonym_with_nothing_left_to_change(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str, admin_key: str
) -> None:
    await _member_everywhere(client, async_engine, full_key)
    first = await call(client, ERASE, admin_key, member_id=MEMBER)

    second = await call(client, ERASE, admin_key, member_id=MEMBER)

    assert second.status_code == 200
    assert second.json()["pseudonym"] == first.json()["pseudonym"]
    assert set(second.json()["changed"].values()) == {0}


async def test_an_erased_members_token_is_refused(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str, admin_key: str
) -> None:
    minted = await call(client, "/publisher.v1/member-token/create", full_key, member_id=MEMBER)
    token = minted.json()["token"]

    await call(client, ERASE, admin_key, member_id=MEMBER)

    assert (await call(client, LIST, token)).status_code == 401


ERASED, NEIGHBOUR = "m1", "m10"
_LETTERS = {
    "theirs": (
        ERASED,
        orjson.dumps(
            {
                "id": "tx-1",
                "member_id": ERASED,
                "amount": -1,
                "merchant": {"id": "mer_bean", "name": "Bean There"},
                "card": {"id": "card_9", "scheme": "visa"},
            }
        ),
        'the database refused a value (22P02): invalid input syntax: "m1"',
    ),
    "theirs, cut short": (ERASED, b'{"id": "tx-2", "member_id": "m1", "amo', "not valid JSON"),
    "the neighbour's": (
        NEIGHBOUR,
        orjson.dumps(
            {
                "id": "tx-m1",
                "member_id": NEIGHBOUR,
                "amount": -1,
                "merchant": {"id": "m1-shop", "name": "m1 coffee"},
                "card": {"id": "card_m1", "scheme": "visa"},
            }
        ),
        'the database refused a value (22P02): invalid input syntax: "m10"',
    ),
    "the neighbour's, cut short": (
        NEIGHBOUR,
        b'{"id": "tx-m1", "member_id": "m10", "note": "x\\"m1", "amo',
        "not valid JSON: m1 bytes in",
    ),
    "text naming m1 in passing": (None, b"m1m1 paid at m1-shop for m10", "not valid JSON"),
}


async def _dead_letters(engine: AsyncEngine) -> dict[str, tuple[bytes | None, bytes, str]]:
    """The letters of `_LETTERS` as the ledger holds them: key, bytes and reason, by name."""
    names = list(_LETTERS)
    async with transaction(engine) as conn:
        rows = await conn.execute(
            text("SELECT source_offset, key, value, reason FROM dead_letters ORDER BY 1")
        )
        return {names[r.source_offset]: (r.key, bytes(r.value), r.reason) for r in rows}


async def test_erasing_a_member_changes_no_dead_letter_that_only_contains_their_id_in_text(
    client: httpx.AsyncClient, async_engine: AsyncEngine, admin_key: str
) -> None:
    async with transaction(async_engine) as conn:
        for offset, (key, value, reason) in enumerate(_LETTERS.values()):
            await conn.execute(
                text(
                    "INSERT INTO dead_letters (source_topic, source_partition, source_offset, "
                    "key, value, size, sha256, reason) "
                    "VALUES ('transactions', 0, :o, :k, :v, 1, :h, :r)"
                ),
                {"o": offset, "k": key and key.encode(), "v": value, "h": "0" * 64, "r": reason},
            )
    before = await _dead_letters(async_engine)

    answer = await call(client, ERASE, admin_key, member_id=ERASED)

    assert answer.status_code == 200, answer.text
    assert answer.json()["changed"]["dead_letters"] == 2
    after = await _dead_letters(async_engine)
    alias = pseudonym(TEST_KEYRING, ERASED)
    theirs = orjson.loads(after["theirs"][1])
    assert theirs["member_id"] == alias and theirs["id"] == "tx-1"
    assert theirs["card"]["id"] == theirs["merchant"]["name"] == ""
    assert (
        after["theirs"][2]
        == f'the database refused a value (22P02): invalid input syntax: "{alias}"'
    )
    assert after["theirs, cut short"][1] == f'{{"id": "tx-2", "member_id": "{alias}", "amo'.encode()
    assert {after[name][0] for name in ("theirs", "theirs, cut short")} == {alias.encode()}
    for name in ("the neighbour's", "the neighbour's, cut short", "text naming m1 in passing"):
        assert after[name] == before[name], name


async def test_an_erased_member_id_enrolls_no_more_and_a_new_id_does(
    client: httpx.AsyncClient, async_engine: AsyncEngine, full_key: str, admin_key: str
) -> None:
    # Their later events act on the renamed rows: a collection under the old id would
    # never stamp, so the member comes back under a new id.
    await add_program(async_engine, "lp_coffee")
    await enroll(client, full_key, MEMBER)
    assert (await call(client, ERASE, admin_key, member_id=MEMBER)).status_code == 200
    again = await call(client, CREATE, full_key, loyalty_program_id="lp_coffee", member_id=MEMBER)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    assert "erased" in again.json()["error"]["message"]
    assert MEMBER not in again.text
    await enroll(client, full_key, "m-new-id")
