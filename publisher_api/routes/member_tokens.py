"""`member-token/*`: short-lived tokens a publisher's backend mints for one member's app."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from ledger import keys
from ledger.database import transaction
from publisher_api.deps import Database, Now, Writer
from publisher_api.docs import ok_with_rate_limit, responses
from publisher_api.member_token_schemas import (
    MemberTokenCreate,
    MemberTokenPublic,
    MemberTokenRevoke,
    MemberTokenRevoked,
)

router = APIRouter(prefix="/publisher.v1/member-token", tags=["member tokens"])


@router.post(
    "/create",
    summary="Mint a token that reads one member's data",
    response_model=MemberTokenPublic,
    responses={**ok_with_rate_limit(), **responses()},
)
async def create_member_token(
    body: MemberTokenCreate, db: Database, _: Writer, now: Now
) -> MemberTokenPublic:
    """Needs a `full` or `admin` key: the publisher's backend calls this for a signed-in
    member and hands the token to the member's app. The token reads that member's
    collections, stamps and rewards, and the programs, nothing else; it is shown once."""
    ttl = timedelta(seconds=body.ttl_seconds)
    async with transaction(db) as conn:
        issued = await keys.create_member_token(conn, body.member_id, ttl, now)
    return MemberTokenPublic.of(issued)


@router.post(
    "/revoke",
    summary="Revoke a member token",
    response_model=MemberTokenRevoked,
    responses={**ok_with_rate_limit(), **responses(404)},
)
async def revoke_member_token(
    body: MemberTokenRevoke, db: Database, _: Writer, now: Now
) -> MemberTokenRevoked:
    """Needs a `full` or `admin` key (on a member's sign-out, say). Refused by every API
    process within a second; 404 for anything but a member token."""
    async with transaction(db) as conn:
        token = await keys.revoke_member_token(conn, body.id, now)
    assert token.member_id is not None and token.revoked_at is not None
    return MemberTokenRevoked(id=token.id, member_id=token.member_id, revoked_at=token.revoked_at)
