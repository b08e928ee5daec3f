"""`wallet.stamp-collection/*`: enroll and unenroll members, read progress and stamp history."""

from __future__ import annotations

from fastapi import APIRouter, Response

from ledger import collections, idempotency, unenrolling
from ledger.adjustments import adjustments_beside
from ledger.database import transaction
from ledger.pseudonyms import Pseudonyms
from publisher_api import pagination
from publisher_api.adjustment_schemas import AdjustmentPublic, StampHistoryPage
from publisher_api.deps import (
    Database,
    Enroller,
    IdempotencyKey,
    MemberReader,
    Now,
    SecretKeyring,
    Writer,
)
from publisher_api.docs import ok_with_rate_limit, responses
from publisher_api.schemas import (
    CollectionCreate,
    CollectionDeleteRequest,
    CollectionGetRequest,
    CollectionListRequest,
    CollectionPage,
    CollectionPublic,
    StampListRequest,
    StampPublic,
    WalletCollectionPublic,
)

router = APIRouter(prefix="/publisher.v1/wallet.stamp-collection", tags=["stamp collections"])


# K42's calls are RPC over POST: every success, enrollment included, answers 200.
@router.post(
    "/create",
    summary="Enroll a member in a program",
    response_model=CollectionPublic,
    responses={**ok_with_rate_limit(), **responses(404, 409, 422)},
)
async def create_collection(
    body: CollectionCreate,
    db: Database,
    caller: Enroller,
    keyring: SecretKeyring,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Needs an `enroll`, `full` or `admin` key. 404 for an unknown, archived or ended program;
    409 when enrolled, or when the member id was erased (they enroll under a new id).

    An `enroll` key may carry allowed browser origins: a wallet page then enrolls its member
    directly (CORS), and a browser on any other origin gets 403.

    With an `Idempotency-Key` header, a retry of the same request within 24 hours gets the
    first answer again (not a 409), and the same key with another body gets a 422.
    """
    async with transaction(db) as conn:
        if idempotency_key is not None:
            digest = idempotency.request_digest(body.model_dump_json().encode())
            claimed = await idempotency.claim(conn, caller.key.id, idempotency_key, digest)
            if claimed.kept_answer is not None:
                return _json(claimed.kept_answer, replayed=True)
        program_id, member_id = body.loyalty_program_id, body.member_id
        pseudonyms = Pseudonyms.of(keyring)
        collection = await collections.enroll(conn, program_id, member_id, pseudonyms)
        answer = CollectionPublic.of(collection).model_dump_json()
        if idempotency_key is not None:
            await idempotency.keep(conn, caller.key.id, idempotency_key, answer)
    return _json(answer, replayed=False)


def _json(body: str, *, replayed: bool) -> Response:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return Response(body, media_type="application/json", headers=headers)


@router.post(
    "/get",
    summary="Read a collection's progress",
    response_model=CollectionPublic,
    responses={**ok_with_rate_limit(), **responses(404)},
)
async def get_collection(body: CollectionGetRequest, caller: MemberReader) -> CollectionPublic:
    """`unredeemed_purchases` counts the stamps of the current reward cycle.

    A member token gets 404 for another member's collection."""
    collection = await collections.get_collection(caller.reads, body.id, member_id=caller.member_id)
    return CollectionPublic.of(collection)


@router.post(
    "/list",
    summary="List a member's collections, with their programs",
    response_model=CollectionPage,
    responses={**ok_with_rate_limit(), **responses()},
)
async def list_collections(body: CollectionListRequest, caller: MemberReader) -> CollectionPage:
    """The member's collections (or a program's, with `loyalty_program_id`), oldest first;
    those whose member unenrolled only with `include_unenrolled`.

    Each carries its program's name, display content and threshold in `loyalty_program`,
    so a wallet renders without a call per program. A member token lists its own member's
    collections: its `member_id` is used when none is given, and another one is a 403.
    """
    limit = body.pagination.limit
    after = pagination.decode("collections", body.pagination.cursor)
    page = await collections.list_collections(
        caller.reads,
        member_id=caller.member(body.member_id),
        program_id=body.loyalty_program_id,
        limit=limit,
        after=after,
        include_unenrolled=body.include_unenrolled,
    )
    data = [WalletCollectionPublic.of_entry(entry) for entry in page.items]
    return CollectionPage(data=data, page=pagination.page_info("collections", page, limit))


@router.post(
    "/stamps",
    summary="List a collection's stamp history",
    response_model=StampHistoryPage,
    responses={**ok_with_rate_limit(), **responses(404)},
)
async def list_stamps(body: StampListRequest, caller: MemberReader) -> StampHistoryPage:
    """Each purchase that stamped the collection, oldest first, voided ones included.

    `adjustments` lists the adjustments by support staff made in the span of this page: after
    the previous page's last stamp, up to this page's last (to now on the last page), so
    paging through the history shows each adjustment once.

    A member token gets 404 for another member's collection."""
    limit = body.pagination.limit
    after = pagination.decode("stamps", body.pagination.cursor, int)
    page = await collections.list_stamps(
        caller.reads, body.stamp_collection_id, limit, after, member_id=caller.member_id
    )
    until = page.items[-1].created_at if page.more else None
    since = after.created_at if after is not None else None
    made = await adjustments_beside(caller.reads, body.stamp_collection_id, since, until)
    return StampHistoryPage(
        data=[StampPublic.of(stamp) for stamp in page.items],
        adjustments=[AdjustmentPublic.of(a) for a in made],
        page=pagination.page_info("stamps", page, limit),
    )


@router.post(
    "/delete",
    summary="Unenroll a member: the collection stops stamping, its history stays",
    response_model=CollectionPublic,
    responses={**ok_with_rate_limit(), **responses(404)},
)
async def delete_collection(
    body: CollectionDeleteRequest, db: Database, _: Writer, now: Now
) -> CollectionPublic:
    """Needs a `full` or `admin` key (a member token writes nothing: the publisher's backend
    calls this when its member asks). From now on no purchase stamps the collection; its
    stamps and rewards stay readable by id, and it leaves the wallet list unless
    `include_unenrolled` is set. Enrolling again starts a new collection.

    Calling it again answers the same (`unenrolled_at` of the first call);
    `stamp_collection.deleted` is sent once."""
    async with transaction(db) as conn:
        collection = await unenrolling.unenroll(conn, body.id, now)
    return CollectionPublic.of(collection)
