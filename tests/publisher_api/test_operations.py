"""`operation/list`: every stamp, void, adjustment and reward, newest first, paged stably."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.database import transaction
from ledger.keys import Scope
from tests.publisher_api.conftest import add_program, add_reward, add_stamp, bearer, issue_key

FEED = "/publisher.v1/operation/list"
ADJUST = "/publisher.v1/wallet.stamp-collection/adjust"
# A day ago, on the hour: rows added while a test pages are newer than every seeded row.
T0 = (datetime.now(UTC) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
T1, T2 = (T0 + timedelta(hours=h) for h in (1, 2))


async def _enroll(engine: AsyncEngine, sc: str, program: str, member: str) -> None:
    async with transaction(engine) as conn:
        await conn.execute(
            text("INSERT INTO stamp_collections (id, program_id, member_id) VALUES (:i, :p, :m)"),
            {"i": sc, "p": program, "m": member},
        )


@pytest.fixture
async def support_key(async_engine: AsyncEngine) -> str:
    return await issue_key(async_engine, Scope.SUPPORT)


@pytest.fixture
async def ledger(
    client: httpx.AsyncClient, async_engine: AsyncEngine, support_key: str
) -> set[tuple[str, str]]:
    """Stamps (some sharing a time), voids, a reward and adjustments on three collections."""
    await add_program(async_engine, "lp_coffee", qualifying_threshold=50)
    await add_program(async_engine, "lp_tea", qualifying_threshold=50)
    owners = {"sc_A": ("lp_coffee", "m_1"), "sc_B": ("lp_coffee", "m_2"), "sc_C": ("lp_tea", "m_1")}
    for sc, (program, member) in owners.items():
        await _enroll(async_engine, sc, program, member)
        for n in range(6):
            await add_stamp(async_engine, sc, f"{sc}-p{n}", created_at=T0 + timedelta(hours=n // 2))
    async with transaction(async_engine) as conn:
        await conn.execute(
            text(
                "UPDATE stamps SET status = 'voided', void_transaction_id = 'r-' || purchase_id, "
                "voided_at = created_at + interval '90 minutes' WHERE purchase_id LIKE '%p1'"
            )
        )
        await conn.execute(text("UPDATE stamp_collections SET unredeemed_purchases = 5"))
    await add_reward(async_engine, "rw_A1", "sc_A", 1)
    for sc in ("sc_A", "sc_C"):
        body = {"stamp_collection_id": sc, "delta": -1, "reason": "dup", "idempotency_key": sc}
        assert (await client.post(ADJUST, json=body, headers=bearer(support_key))).is_success
    return await _all(async_engine)


async def _all(engine: AsyncEngine, where: str = "TRUE") -> set[tuple[str, str]]:
    async with transaction(engine) as conn:
        rows = await conn.execute(
            text(
                f"""
                SELECT * FROM (
                    SELECT 'stamp' AS kind, s.id::text AS id, c.program_id, c.member_id,
                           s.created_at AS at
                    FROM stamps s JOIN stamp_collections c ON c.id = s.collection_id
                    UNION ALL
                    SELECT 'void', s.id::text, c.program_id, c.member_id, s.voided_at
                    FROM stamps s JOIN stamp_collections c ON c.id = s.collection_id
                    WHERE s.status = 'voided'
                    UNION ALL
                    SELECT 'reward', r.id, c.program_id, c.member_id, r.created_at
                    FROM rewards r JOIN stamp_collections c ON c.id = r.collection_id
                    UNION ALL
                    SELECT 'adjustment', a.id, c.program_id, c.member_id, a.created_at
                    FROM stamp_adjustments a JOIN stamp_collections c ON c.id = a.collection_id
                ) o WHERE {where}
                """
            )
        )
        return {(r.kind, r.id) for r in rows}


async def _pages(
    client: httpx.AsyncClient, key: str, body: dict[str, Any], between: Any = None
) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        answer = await client.post(
            FEED, json={**body, "pagination": {"limit": 4, "cursor": cursor}}, headers=bearer(key)
        )
        assert answer.status_code == 200, answer.text
        seen += answer.json()["data"]
        cursor = answer.json()["page"]["cursor"]
        if not answer.json()["page"]["more"]:
            return seen
        if between is not None:
            await between()


async def test_paging_shows_every_operation_once_newest_first_while_rows_are_added(
    client: httpx.AsyncClient,
    async_engine: AsyncEngine,
    support_key: str,
    ledger: set[tuple[str, str]],
) -> None:
    added = iter(range(1000))

    async def more_rows() -> None:
        n = next(added)
        await add_stamp(async_engine, "sc_B", f"late-{n}")
        body = {"stamp_collection_id": "sc_B", "delta": 1, "reason": "r", "idempotency_key": str(n)}
        await client.post(ADJUST, json=body, headers=bearer(support_key))

    seen = await _pages(client, support_key, {}, between=more_rows)

    ids = [(op["kind"], op["id"]) for op in seen]
    assert len(ids) == len(set(ids)) == len(ledger) == 18 + 3 + 1 + 2
    assert set(ids) == ledger
    times = [op["recorded_at"] for op in seen]
    assert times == sorted(times, reverse=True)
    assert {op["kind"] for op in seen} == {"stamp", "void", "reward", "adjustment"}
    assert next(op for op in seen if op["kind"] == "adjustment")["delta"] == -1


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"member_id": "m_1"}, "member_id = 'm_1'"),
        ({"loyalty_program_id": "lp_tea"}, "program_id = 'lp_tea'"),
        (
            {"member_id": "m_1", "loyalty_program_id": "lp_coffee"},
            "member_id = 'm_1' AND program_id = 'lp_coffee'",
        ),
        (
            {"from": T1.isoformat(), "to": T2.isoformat()},
            f"at >= '{T1.isoformat()}' AND at < '{T2.isoformat()}'",
        ),
        (
            {"member_id": "m_2", "from": T1.isoformat()},
            f"member_id = 'm_2' AND at >= '{T1.isoformat()}'",
        ),
    ],
)
async def test_filters_narrow_the_feed(
    client: httpx.AsyncClient,
    async_engine: AsyncEngine,
    support_key: str,
    ledger: set[tuple[str, str]],
    body: dict[str, Any],
    where: str,
) -> None:
    seen = await _pages(client, support_key, body)
    expected = await _all(async_engine, where)
    assert expected and expected < ledger
    assert {(op["kind"], op["id"]) for op in seen} == expected
    assert len(seen) == len(expected)


@pytest.mark.parametrize("scope", [Scope.READ, Scope.ENROLL])
async def test_keys_without_support_may_not_read_the_feed(
    client: httpx.AsyncClient, async_engine: AsyncEngine, scope: Scope
) -> None:
    key = await issue_key(async_engine, scope)
    assert (await client.post(FEED, json={}, headers=bearer(key))).status_code == 403


async def test_a_cursor_of_another_list_is_refused(
    client: httpx.AsyncClient, support_key: str
) -> None:
    from ledger.pages import Position
    from publisher_api.pagination import encode

    cursor = encode("stamps", Position(T0, 1))
    answer = await client.post(
        FEED, json={"pagination": {"cursor": cursor}}, headers=bearer(support_key)
    )
    assert answer.status_code == 400
