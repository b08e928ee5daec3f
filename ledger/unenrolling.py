"""Unenrolling: a member leaves a program; the collection stops stamping, its history stays.

The collection is never deleted: its stamps and rewards are money records, and the payouts
already published name it. Undos of its past purchases still void its stamps (its counts stay
what the stamps say, so `autostamp reconcile` holds), but no purchase stamps it again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.collections import CollectionRecord, get_collection
from ledger.events import CollectionRef, StampCollectionDeleted
from ledger.outbox import enqueue_events
from ledger.schema import StampCollection
from ledger.statements import InTransaction


async def unenroll(conn: AsyncConnection, collection_id: str, now: datetime) -> CollectionRecord:
    """End the collection at `now`, once; raises NotFound.

    Repeating it changes nothing and answers the same collection, ended at the first call's
    time. The `stamp_collection.deleted` event is written, in this transaction, only by the
    call that ended it. The row lock taken here is the one the worker's batches take, so a
    batch either stamped before this commits or sees the collection ended.
    """
    ended = (
        await conn.execute(
            update(StampCollection)
            .where(StampCollection.id == collection_id, StampCollection.unenrolled_at.is_(None))
            .values(unenrolled_at=now, updated_at=now)
            .returning(StampCollection.id)
        )
    ).scalar_one_or_none()
    collection = await get_collection(InTransaction(conn), collection_id)
    if ended is not None:
        ref = CollectionRef(
            collection_id=collection.id,
            program_id=collection.program_id,
            member_id=collection.member_id,
            qualifying_threshold=collection.qualifying_threshold,
        )
        await enqueue_events(conn, [StampCollectionDeleted(timestamp=now, collection=ref)])
    return collection
