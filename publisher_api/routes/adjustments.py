"""`wallet.stamp-collection/adjust`: support staff add or take away stamps, with a reason."""

from __future__ import annotations

from fastapi import APIRouter, Response

from ledger.adjustments import adjust_collection
from ledger.database import transaction
from publisher_api.adjustment_schemas import AdjustmentCreate, AdjustmentPublic
from publisher_api.deps import Database, Now, Supporter
from publisher_api.docs import ok_with_rate_limit, responses

router = APIRouter(prefix="/publisher.v1/wallet.stamp-collection", tags=["stamp collections"])


@router.post(
    "/adjust",
    summary="Add or take away stamps (support)",
    response_model=AdjustmentPublic,
    responses={**ok_with_rate_limit(), **responses(404, 409, 422)},
)
async def adjust(body: AdjustmentCreate, db: Database, caller: Supporter, now: Now) -> Response:
    """Needs a `support`, `full` or `admin` key. A positive `delta` adds stamps by the stamping
    rules: each cycle it completes triggers its reward, paid for the collection's latest
    counted purchase (409 if it has none). A negative one takes stamps away from the current
    cycle; beyond it, the next cycle owes them. Never a negative count, never a reward taken
    back. The same `idempotency_key` again answers the first adjustment (header
    `Idempotent-Replayed: true`) and changes nothing; with another delta or reason, 422.
    """
    async with transaction(db) as conn:
        record = await adjust_collection(
            conn,
            body.stamp_collection_id,
            body.delta,
            body.reason,
            body.idempotency_key,
            caller.key.id,
            now,
        )
    headers = {"Idempotent-Replayed": "true"} if record.replayed else None
    answer = AdjustmentPublic.of(record).model_dump_json()
    return Response(answer, media_type="application/json", headers=headers)
