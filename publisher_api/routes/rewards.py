"""`reward/list` and `reward/get`: the rewards members' collections have triggered."""

from __future__ import annotations

from fastapi import APIRouter

from ledger import collections
from publisher_api import pagination
from publisher_api.deps import Reader
from publisher_api.docs import ok_with_rate_limit, responses
from publisher_api.schemas import RewardGetRequest, RewardListRequest, RewardPage, RewardPublic

router = APIRouter(prefix="/publisher.v1/reward", tags=["rewards"])


@router.post(
    "/list",
    summary="List the rewards of a member or of a collection",
    response_model=RewardPage,
    responses={**ok_with_rate_limit(), **responses(404)},
)
async def list_rewards(body: RewardListRequest, caller: Reader) -> RewardPage:
    """Give `member_id` or `stamp_collection_id`, not both; oldest reward first."""
    limit = body.pagination.limit
    after = pagination.decode("rewards", body.pagination.cursor)
    page = await collections.list_rewards(
        caller.reads,
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
async def get_reward(body: RewardGetRequest, caller: Reader) -> RewardPublic:
    """A reward by id."""
    reward = await collections.get_reward(caller.reads, body.id)
    return RewardPublic.of(reward)
