"""`member/erase`: a member's right to erasure, with the money records kept."""

from __future__ import annotations

from fastapi import APIRouter

from ledger import erasure
from ledger.database import transaction
from publisher_api.deps import Admin, Database, Now, SecretKeyring
from publisher_api.docs import ok_with_rate_limit, responses
from publisher_api.member_schemas import MemberErase, MemberErased

router = APIRouter(prefix="/publisher.v1/member", tags=["members"])


@router.post(
    "/erase",
    summary="Erase a member: their identifiers become a pseudonym, the money records stay",
    response_model=MemberErased,
    responses={**ok_with_rate_limit(), **responses()},
)
async def erase_member(
    body: MemberErase, db: Database, _: Admin, keyring: SecretKeyring, now: Now
) -> MemberErased:
    """Needs an `admin` key. Replaces the member id by a stable pseudonym in collections,
    purchase events, undos, dead letters, kept idempotent answers, member tokens (revoked) and
    webhook messages not sent yet; clears the merchant of each stamp and the card and merchant
    in dead letters. Stamps, rewards and counts stay as they were.

    Calling it again answers the same pseudonym, with 0 changed unless something of the member
    arrived since. A transaction for the member id arriving later finds no collection and
    stamps nothing."""
    async with transaction(db) as conn:
        erased = await erasure.erase_member(conn, keyring, body.member_id, now)
    return MemberErased.of(erased)
