"""What each stamp's status needs: the undos that void it, and an undo behind each void."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.domain import UndoFact, voiding_undo
from ledger.reconcile.differences import Difference, of_the_purchase
from rules import PartialRefunds

_UNDONE = f"""
SELECT s.id AS stamp_id, s.collection_id, s.purchase_id, s.amount, s.currency,
       p.rules->>'partial_refunds' AS policy,
       u.id, u.original_id, u.member_id, u.type, u.amount AS undo_amount,
       u.currency AS undo_currency
FROM stamps s
JOIN stamp_collections c ON c.id = s.collection_id
JOIN programs p ON p.id = c.program_id
JOIN undos u ON u.member_id = c.member_id AND {of_the_purchase("u", "s", "c.member_id")}
WHERE s.status IN ('live', 'capped')
ORDER BY s.id
"""  # noqa: S608 (constant SQL)


async def undone_stamps(conn: AsyncConnection) -> list[Difference]:
    """Stamps still counted (or waiting on a cap) that the undos of their purchase void under
    the program's `partial_refunds`."""
    stamps: dict[int, Any] = {}
    undos: dict[int, list[UndoFact]] = defaultdict(list)
    for r in await conn.execute(text(_UNDONE)):
        stamps[r.stamp_id] = r
        undos[r.stamp_id].append(
            UndoFact(r.id, r.original_id, r.member_id, r.type, r.undo_amount, r.undo_currency)
        )
    found = []
    for stamp_id, r in stamps.items():
        policy = PartialRefunds(r.policy or PartialRefunds.VOID)
        voider = voiding_undo(policy, r.amount, r.currency, undos[stamp_id])
        if voider is not None:
            subject = f"{r.collection_id}/{r.purchase_id}"
            found.append(Difference("stamp not voided", subject, f"voided by {voider}", "counted"))
    return found


_VOIDS = """
SELECT s.collection_id, s.purchase_id, s.void_transaction_id FROM stamps s
WHERE s.status = 'voided' AND NOT EXISTS (SELECT 1 FROM undos u WHERE u.id = s.void_transaction_id)
ORDER BY s.id
"""


async def unexplained_voids(conn: AsyncConnection) -> list[Difference]:
    """Voided stamps whose undo is not in the ledger."""
    return [
        Difference(
            "void without undo",
            f"{r.collection_id}/{r.purchase_id}",
            f"undo {r.void_transaction_id} in the ledger",
            "none",
        )
        for r in await conn.execute(text(_VOIDS))
    ]
