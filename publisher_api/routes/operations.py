"""`operation/list`: the operations feed of stamps, voids, adjustments and rewards."""

from __future__ import annotations

from fastapi import APIRouter

from ledger.operations import Cursor, list_operations
from publisher_api import pagination
from publisher_api.deps import Supporter
from publisher_api.docs import ok_with_rate_limit, responses
from publisher_api.errors import InvalidRequest
from publisher_api.operation_schemas import OperationListRequest, OperationPage, OperationPublic

router = APIRouter(prefix="/publisher.v1/operation", tags=["operations"])


@router.post(
    "/list",
    summary="List every stamp, void, adjustment and reward, newest first (support)",
    response_model=OperationPage,
    responses={**ok_with_rate_limit(), **responses()},
)
async def list_ops(body: OperationListRequest, caller: Supporter) -> OperationPage:
    """Needs a `support`, `full` or `admin` key. Newest first; filter by program, member and
    the time recorded (`from` inclusive, `to` exclusive). Pages are stable while rows are
    added: new rows appear on top, for the next read without a cursor."""
    limit = body.pagination.limit
    position = pagination.decode("operations", body.pagination.cursor)
    try:
        after = Cursor.of(position) if position is not None else None
    except ValueError as exc:
        raise InvalidRequest("pagination.cursor: not a cursor of operations") from exc
    page = await list_operations(
        caller.reads,
        limit=limit,
        after=after,
        member_id=body.member_id,
        program_id=body.loyalty_program_id,
        since=body.from_,
        until=body.to,
    )
    data = [OperationPublic.of(op) for op in page.items]
    return OperationPage(data=data, page=pagination.page_info("operations", page, limit))
