"""`reward/list` and `reward/get`: the rewards members' collections have triggered."""

from __future__ import annotations

from fastapi import APIRouter

from ledger import collections
from ledger.database import transaction
from publisher_api import pagination
from publisher_api.deps import Database, Reader
from publisher_api.docs import ok_with_rate_limit, responses
from publisher_api.schemas import RewardGetRequest, RewardListRequest, RewardPage, RewardPublic

router = APIRouter(prefix="/publisher.v1/reward", tags=["rewards"])


@router.post(
    "/list",
    summary="List the rewards of a member or of a collection",
    response_model=RewardPage,
    responses={**ok_with_rate_limit(), **responses(404)},
)
async def list_rewards(body: RewardListRequest, db: Database, _: Reader) -> RewardPage:
    """Give `member_id` or `stamp_collection_id`, not both; oldest reward first."""
    limit = body.pagination.limit
    after = pagination.decode("rewards", body.pagination.cursor)
    async with transaction(db) as conn:
        page = await collections.list_rewards(
            conn,
            member_id=body.member_id,
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
async def get_reward(body: RewardGetRequest, db: Database, _: Reader) -> RewardPublic:
    """A reward by id."""
    async with transaction(db) as conn:
        reward = await collections.get_reward(conn, body.id)
    return RewardPublic.of(reward)
