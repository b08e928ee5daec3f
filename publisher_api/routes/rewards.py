"""`reward/*`: the rewards members' collections have triggered, and their payouts' fate."""

from __future__ import annotations

from fastapi import APIRouter

from ledger import collections, payouts
from ledger.database import transaction
from ledger.payout_reports import PayoutReport, UnknownAttempt
from ledger.statements import InTransaction
from publisher_api import pagination
from publisher_api.deps import Admin, Database, MemberReader
from publisher_api.docs import ok_with_rate_limit, responses
from publisher_api.errors import InvalidRequest
from publisher_api.schemas import (
    PayoutReportRequest,
    RewardGetRequest,
    RewardListRequest,
    RewardPage,
    RewardPublic,
)

router = APIRouter(prefix="/publisher.v1/reward", tags=["rewards"])


@router.post(
    "/list",
    summary="List the rewards of a member or of a collection",
    response_model=RewardPage,
    responses={**ok_with_rate_limit(), **responses(404)},
)
async def list_rewards(body: RewardListRequest, caller: MemberReader) -> RewardPage:
    """Give `member_id` or `stamp_collection_id`, not both; oldest reward first.

    A member token gets 403 for another `member_id`, 404 for another member's collection."""
    limit = body.pagination.limit
    after = pagination.decode("rewards", body.pagination.cursor)
    page = await collections.list_rewards(
        caller.reads,
        member_id=caller.member(body.member_id),
        collection_id=body.stamp_collection_id,
        limit=limit,
        after=after,
    )
    data = [RewardPublic.of(reward) for reward in page.items]
    return RewardPage(data=data, page=pagination.page_info("rewards", page, limit))


@router.post(
    "/get",
    summary="Read one reward",
    response_model=RewardPublic,
    responses={**ok_with_rate_limit(), **responses(404)},
)
async def get_reward(body: RewardGetRequest, caller: MemberReader) -> RewardPublic:
    """A reward by id; a member token gets 404 for another member's reward."""
    reward = await collections.get_reward(caller.reads, body.id, member_id=caller.member_id)
    return RewardPublic.of(reward)


@router.post(
    "/report-payout",
    summary="Report a payout paid or failed (for the payout system)",
    response_model=RewardPublic,
    responses={**ok_with_rate_limit(), **responses(404)},
)
async def report_payout(body: PayoutReportRequest, db: Database, _: Admin) -> RewardPublic:
    """Needs an `admin` key. Paid is final; a failure counts for the current attempt only,
    and the latest one gives the reason. A report sent twice, or late, changes nothing. A
    change sends `reward.paid` or `reward.failed`."""
    report = PayoutReport(body.attempt, body.outcome, body.reported_at, body.reason)
    async with transaction(db) as conn:
        try:
            await payouts.report_payout(conn, body.reward_id, report)
        except UnknownAttempt as exc:
            raise InvalidRequest(str(exc)) from exc
        reward = await collections.get_reward(InTransaction(conn), body.reward_id)
    return RewardPublic.of(reward)


@router.post(
    "/retry-payout",
    summary="Publish a failed payout again, as its next attempt",
    response_model=RewardPublic,
    responses={**ok_with_rate_limit(), **responses(404, 409)},
)
async def retry_payout(body: RewardGetRequest, db: Database, _: Admin) -> RewardPublic:
    """Needs an `admin` key. Only a failed payout: it goes out again with the same
    idempotency key (the reward id) and the next `attempt`; 409 otherwise."""
    async with transaction(db) as conn:
        await payouts.retry_payout(conn, body.id)
        reward = await collections.get_reward(InTransaction(conn), body.id)
    return RewardPublic.of(reward)
