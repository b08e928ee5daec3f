"""Stamps a batch of transaction events exactly once: a fixed number of statements per batch.

Why a batch is safe under redelivery, crashes, and two workers holding the same events
during a rebalance:

1. the collections of every member in the batch are locked, in id order (no deadlock between
   batches): a second worker holding the same events waits here for the first to commit,
   then reads what it wrote and finds nothing left to do;
2. everything the planner needs is read under those locks (`ledger.scope` says what);
3. the pure planner decides (`ledger.planner`), and the plan is written in bulk. The unique
   keys (one stamp per collection and purchase, one reward per collection and cycle) make a
   repeated write fail rather than double anything; remembered events and undos of members
   without collections go in with `ON CONFLICT DO NOTHING`, being facts, not effects.

A crash before the commit leaves nothing; a crash after it leaves a batch whose replay finds
every event already applied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.batch import BatchOutcome, Incoming, Rejected
from ledger.dead_letters import record_dead_letters
from ledger.erasure import erased_names
from ledger.model import CollectionView, NewReward, Plan, StampRow
from ledger.outbox import enqueue_events
from ledger.planner import plan_batch
from ledger.pseudonyms import Pseudonyms
from ledger.sql import as_json, insert_rows
from ledger.views import read_view
from rules import ProgramDefinition

Programs = Mapping[str, ProgramDefinition]


async def stamp_batch(
    conn: AsyncConnection,
    incoming: Sequence[Incoming],
    rejected: Sequence[Rejected],
    programs: Programs,
    now: datetime,
    pseudonyms: Pseudonyms | None = None,
) -> BatchOutcome:
    """Apply one batch inside the caller's transaction; safe to repeat after a crash.

    With `pseudonyms`, the events of erased members act on their renamed rows: the worker
    always gives them; a replay of past events in a backtest or benchmark needs none."""
    await record_dead_letters(conn, rejected)
    if pseudonyms is not None:
        incoming = await as_erased(conn, incoming, pseudonyms)
    view = await read_view(conn, incoming, programs)
    plan = plan_batch(incoming, view, programs, now)
    await write_effects(conn, plan, now)
    await enqueue_events(conn, plan.events, view.announce)
    return plan.outcome + BatchOutcome(dead_lettered=len(rejected))


async def as_erased(
    conn: AsyncConnection, incoming: Sequence[Incoming], pseudonyms: Pseudonyms
) -> Sequence[Incoming]:
    """The batch with each erased member's events under their pseudonym."""
    erased = await erased_names(conn, pseudonyms, {item.tx.member_id for item in incoming})
    if not erased:
        return incoming
    return [
        replace(item, tx=item.tx.model_copy(update={"member_id": erased[item.tx.member_id]}))
        if item.tx.member_id in erased
        else item
        for item in incoming
    ]


async def write_effects(conn: AsyncConnection, plan: Plan, now: datetime) -> None:
    """Write what the plan changes in the ledger (its webhook events are the outbox's)."""
    await _remember_events(conn, plan)
    await _remember_undos(conn, plan)
    await _insert_stamps(conn, plan.new_stamps, now)
    await _update_stamps(conn, plan.changed_stamps, now)
    await update_collections(conn, plan.collections, now)
    await insert_rewards(conn, plan.rewards)


# Columns of the remembered events and undos, with their SQL types.
_EVENT_COLUMNS = {
    "id": "text",
    "purchase_id": "text",
    "member_id": "text",
    "type": "text",
    "amount": "bigint",
    "currency": "text",
    "occurred_at": "timestamptz",
}
_UNDO_COLUMNS = {
    "id": "text",
    "original_id": "text",
    "member_id": "text",
    "type": "text",
    "amount": "bigint",
    "currency": "text",
}
_SOURCE_COLUMNS = {"source_topic": "text", "source_partition": "int", "source_offset": "bigint"}


def _remembered(item: Incoming, columns: dict[str, str]) -> dict[str, object]:
    tx, source = item.tx, item.source
    row: dict[str, object] = {name: getattr(tx, name) for name in columns}
    row.update(source_topic=source.topic, source_partition=source.partition)
    row["source_offset"] = source.offset
    return row


async def _remember_events(conn: AsyncConnection, plan: Plan) -> None:
    columns = {**_EVENT_COLUMNS, **_SOURCE_COLUMNS}
    rows = [_remembered(i, _EVENT_COLUMNS) for i in plan.purchase_events]
    await insert_rows(
        conn, "purchase_events", columns, rows, "ON CONFLICT (member_id, id) DO NOTHING"
    )


async def _remember_undos(conn: AsyncConnection, plan: Plan) -> None:
    columns = {**_UNDO_COLUMNS, **_SOURCE_COLUMNS}
    rows = [_remembered(i, _UNDO_COLUMNS) for i in plan.undos]
    await insert_rows(conn, "undos", columns, rows, "ON CONFLICT (member_id, id) DO NOTHING")


def _stamp_values(stamp: StampRow) -> dict[str, object]:
    return {
        "c": stamp.collection_id,
        "p": stamp.purchase_id,
        "t": stamp.transaction_id,
        "cy": stamp.cycle,
        "a": stamp.amount,
        "cu": stamp.currency,
        "mi": stamp.merchant_id,
        "mn": stamp.merchant_name,
        "o": stamp.occurred_at,
        "st": stamp.status.value,
        "v": stamp.void_transaction_id,
    }


async def _insert_stamps(conn: AsyncConnection, stamps: Sequence[StampRow], now: datetime) -> None:
    if not stamps:
        return
    await conn.execute(
        text(
            """
            INSERT INTO stamps (collection_id, purchase_id, transaction_id, cycle, amount,
                                currency, merchant_id, merchant_name, occurred_at, status,
                                voided_at, void_transaction_id)
            SELECT c, p, t, cy, a, cu, mi, mn, o, st,
                   CASE WHEN st = 'voided' THEN CAST(:now AS timestamptz) END, v
            FROM json_to_recordset(CAST(:rows AS json)) AS u(
                c text, p text, t text, cy int, a bigint, cu text, mi text, mn text,
                o timestamptz, st text, v text)
            """
        ),
        {"now": now, "rows": as_json([_stamp_values(s) for s in stamps])},
    )


async def _update_stamps(conn: AsyncConnection, stamps: Sequence[StampRow], now: datetime) -> None:
    if not stamps:
        return
    rows = [
        {"id": s.id, "st": s.status.value, "cy": s.cycle, "v": s.void_transaction_id}
        for s in stamps
    ]
    await conn.execute(
        text(
            """
            UPDATE stamps s SET status = u.st, cycle = u.cy, void_transaction_id = u.v,
                   voided_at = CASE WHEN u.st = 'voided' THEN CAST(:now AS timestamptz) END
            FROM json_to_recordset(CAST(:rows AS json)) AS u(id bigint, st text, cy int, v text)
            WHERE s.id = u.id
            """
        ),
        {"now": now, "rows": as_json(rows)},
    )


async def update_collections(
    conn: AsyncConnection, collections: Sequence[CollectionView], now: datetime
) -> None:
    if not collections:
        return
    rows = [
        {
            "id": c.id,
            "u": c.tally.unredeemed_purchases,
            "o": c.tally.owed_stamps,
            "cy": c.tally.cycle,
        }
        for c in collections
    ]
    await conn.execute(
        text(
            """
            UPDATE stamp_collections c
            SET unredeemed_purchases = u.u, owed_stamps = u.o, cycle = u.cy, updated_at = :now
            FROM json_to_recordset(CAST(:rows AS json)) AS u(id text, u int, o int, cy int)
            WHERE c.id = u.id
            """
        ),
        {"now": now, "rows": as_json(rows)},
    )


_REWARD_COLUMNS = {
    "id": "text",
    "collection_id": "text",
    "cycle": "int",
    "type": "text",
    "amount": "bigint",
    "currency": "text",
    "transaction_id": "text",
    "purchase_id": "text",
    "stamps_used": "int",
    "program_version": "int",
}


async def insert_rewards(conn: AsyncConnection, rewards: Sequence[NewReward]) -> None:
    """Insert rewards; a second reward for the same cycle of a collection is refused."""
    await insert_rows(conn, "rewards", _REWARD_COLUMNS, [asdict(r) for r in rewards])
