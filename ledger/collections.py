"""Stamp collections as publishers use them: enroll, read progress, stamp history, rewards."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, exists, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.erasure import erased_names
from ledger.errors import DuplicateEnrollment, MemberErased, NotFound
from ledger.events import CollectionRef, StampCollectionCreated
from ledger.ids import new_id
from ledger.outbox import enqueue_events
from ledger.pages import KeysetQuery, Page, Position, page_of
from ledger.programs import visible
from ledger.pseudonyms import Pseudonyms
from ledger.schema import Program, Reward, Stamp, StampCollection
from ledger.statements import InTransaction, Statements


@dataclass(frozen=True)
class CollectionRecord:
    """A member's enrollment in a program and the stamps of its current cycle."""

    id: str
    program_id: str
    member_id: str
    unredeemed_purchases: int
    owed_stamps: int
    qualifying_threshold: int
    created_at: datetime
    updated_at: datetime
    unenrolled_at: datetime | None = None

    @property
    def purchases_to_next_reward(self) -> int:
        """Stamps the member still needs, the debt of voids in rewarded cycles included."""
        return self.qualifying_threshold - self.unredeemed_purchases + self.owed_stamps


@dataclass(frozen=True)
class ProgramSummary:
    """What a wallet shows of a collection's program, without another call."""

    id: str
    name: str
    status: str
    qualifying_threshold: int
    display_content: dict[str, Any]


@dataclass(frozen=True)
class WalletEntry:
    """A collection in a member's wallet, with its program."""

    collection: CollectionRecord
    program: ProgramSummary


@dataclass(frozen=True)
class StampRecord:
    """One purchase's stamp on a collection, and its void if the purchase was undone."""

    id: int
    purchase_id: str
    transaction_id: str
    cycle: int
    amount: int
    currency: str
    merchant_id: str
    merchant_name: str
    occurred_at: datetime
    created_at: datetime
    status: str
    voided_at: datetime | None
    void_transaction_id: str | None


@dataclass(frozen=True)
class RewardRecord:
    """A reward triggered when a collection completed a cycle."""

    id: str
    collection_id: str
    program_id: str
    member_id: str
    cycle: int
    type: str
    amount: int
    currency: str
    transaction_id: str | None  # None: a cycle an edit completed with nothing to pay back
    purchase_id: str | None
    created_at: datetime
    payout_published_at: datetime | None
    payout_status: str
    payout_attempt: int
    payout_reason: str | None
    payout_reported_at: datetime | None


_COLLECTION = (
    StampCollection.id,
    StampCollection.program_id,
    StampCollection.member_id,
    StampCollection.unredeemed_purchases,
    StampCollection.owed_stamps,
    Program.qualifying_threshold,
    StampCollection.created_at,
    StampCollection.updated_at,
    StampCollection.unenrolled_at,
)
_STAMP = tuple(Stamp.__table__.c[name] for name in StampRecord.__dataclass_fields__)
_REWARD = (
    Reward.id,
    Reward.collection_id,
    StampCollection.program_id,
    StampCollection.member_id,
    Reward.cycle,
    Reward.type,
    Reward.amount,
    Reward.currency,
    Reward.transaction_id,
    Reward.purchase_id,
    Reward.created_at,
    Reward.payout_published_at,
    Reward.payout_status,
    Reward.payout_attempt,
    Reward.payout_reason,
    Reward.payout_reported_at,
)


def _collections() -> Any:
    return select(*_COLLECTION).join(Program, Program.id == StampCollection.program_id)


def _rewards() -> Any:
    return select(*_REWARD).join(StampCollection, StampCollection.id == Reward.collection_id)


async def enroll(
    conn: AsyncConnection, program_id: str, member_id: str, pseudonyms: Pseudonyms
) -> CollectionRecord:
    """Create the member's collection in a visible program.

    Raises NotFound for an unknown, archived or ended program, DuplicateEnrollment (with
    the existing collection's id) when the member is enrolled already, and MemberErased for
    an erased member id; a member who unenrolled gets a new collection. Writes the
    `stamp_collection.created` webhook event in the same transaction.
    """
    if await erased_names(conn, pseudonyms, {member_id}):
        raise MemberErased()
    source = select(literal(new_id("sc")), Program.id, literal(member_id)).where(
        Program.id == program_id, visible()
    )
    stmt = (
        insert(StampCollection)
        .from_select(["id", "program_id", "member_id"], source)
        .on_conflict_do_nothing(
            index_elements=[StampCollection.program_id, StampCollection.member_id],
            index_where=StampCollection.unenrolled_at.is_(None),
        )
        .returning(StampCollection.id)
    )
    created = (await conn.execute(stmt)).scalar_one_or_none()
    if created is None:
        raise await _why_not_enrolled(conn, program_id, member_id)
    collection = await get_collection(InTransaction(conn), created)
    ref = CollectionRef(
        collection_id=collection.id,
        program_id=collection.program_id,
        member_id=collection.member_id,
        qualifying_threshold=collection.qualifying_threshold,
    )
    # In the enrollment's transaction: the event is sent if and only if the member enrolled.
    await enqueue_events(
        conn, [StampCollectionCreated(timestamp=collection.created_at, collection=ref)]
    )
    return collection


async def _why_not_enrolled(
    conn: AsyncConnection, program_id: str, member_id: str
) -> NotFound | DuplicateEnrollment:
    program_visible = exists().where(Program.id == program_id, visible())
    existing = (
        select(StampCollection.id)
        .where(
            StampCollection.program_id == program_id,
            StampCollection.member_id == member_id,
            StampCollection.unenrolled_at.is_(None),
        )
        .scalar_subquery()
    )
    row = (await conn.execute(select(program_visible, existing))).one()
    if not row[0] or row[1] is None:
        return NotFound("loyalty program", program_id)
    return DuplicateEnrollment(program_id, member_id, row[1])


def _of_member() -> Any:
    return StampCollection.member_id == bindparam("member_id")


# Each read by id has a twin for a member token: its member filter is in the same statement.
_BY_ID = _collections().where(StampCollection.id == bindparam("collection_id"))
_BY_ID_OF_MEMBER = _BY_ID.where(_of_member())
_PROGRAM_SUMMARY = (
    Program.name.label("program_name"),
    Program.status.label("program_status"),
    Program.display_content.label("program_display_content"),
)


def _wallet(*where: Any) -> KeysetQuery:
    stmt = _collections().add_columns(*_PROGRAM_SUMMARY).where(*where)
    return KeysetQuery(stmt, StampCollection.created_at, StampCollection.id)


def _of_program() -> Any:
    return StampCollection.program_id == bindparam("program_id")


_ENROLLED = StampCollection.unenrolled_at.is_(None)
# Keyed by (member given, program given, unenrolled included).
_WALLETS = {
    (True, False, True): _wallet(_of_member()),
    (False, True, True): _wallet(_of_program()),
    (True, True, True): _wallet(_of_member(), _of_program()),
    (True, False, False): _wallet(_of_member(), _ENROLLED),
    (False, True, False): _wallet(_of_program(), _ENROLLED),
    (True, True, False): _wallet(_of_member(), _of_program(), _ENROLLED),
}
_STAMPS = select(*_STAMP).where(Stamp.collection_id == bindparam("collection_id"))
_STAMPS_OF = KeysetQuery(_STAMPS, Stamp.created_at, Stamp.id)
_STAMPS_OF_MEMBER = KeysetQuery(
    _STAMPS.join(StampCollection, StampCollection.id == Stamp.collection_id).where(_of_member()),
    Stamp.created_at,
    Stamp.id,
)
_REWARD_BY_ID = _rewards().where(Reward.id == bindparam("reward_id"))
_REWARD_BY_ID_OF_MEMBER = _REWARD_BY_ID.where(_of_member())
_REWARDS_OF_COLLECTION = KeysetQuery(
    _rewards().where(Reward.collection_id == bindparam("collection_id")),
    Reward.created_at,
    Reward.id,
)
_REWARDS_OF_MEMBERS_COLLECTION = KeysetQuery(
    _rewards().where(Reward.collection_id == bindparam("collection_id"), _of_member()),
    Reward.created_at,
    Reward.id,
)
_REWARDS_OF_MEMBER = KeysetQuery(
    _rewards().where(_of_member()),
    Reward.created_at,
    Reward.id,
)
# Keyed by (member given, collection given).
_REWARDS = {
    (True, False): _REWARDS_OF_MEMBER,
    (False, True): _REWARDS_OF_COLLECTION,
    (True, True): _REWARDS_OF_MEMBERS_COLLECTION,
}
_COLLECTION_IS = StampCollection.id == bindparam("collection_id")
_EXISTS = select(exists().where(_COLLECTION_IS).label("found"))
_EXISTS_OF_MEMBER = select(exists().where(_COLLECTION_IS, _of_member()).label("found"))


async def get_collection(
    db: Statements, collection_id: str, *, member_id: str | None = None
) -> CollectionRecord:
    """One collection, whatever its program's status; raises NotFound.

    With `member_id`, another member's collection is NotFound too.
    """
    params = {"collection_id": collection_id}
    rows = await _rows(db, (_BY_ID, _BY_ID_OF_MEMBER), params, member_id)
    if not rows:
        raise NotFound("stamp collection", collection_id)
    return CollectionRecord(**rows[0])


async def list_collections(
    db: Statements,
    *,
    member_id: str | None = None,
    program_id: str | None = None,
    limit: int,
    after: Position | None = None,
    include_unenrolled: bool = False,
) -> Page[WalletEntry]:
    """A member's collections, or a program's, or a member's in one program; oldest first.

    Each comes with its program's summary, whatever the program's status. Unenrolled
    collections only with `include_unenrolled`.
    """
    if member_id is None and program_id is None:
        raise ValueError("give member_id, program_id or both")
    query = _WALLETS[(member_id is not None, program_id is not None, include_unenrolled)]
    stmt, params = query.statement(after, limit, member_id=member_id, program_id=program_id)
    rows = await db.rows(stmt, params)
    return page_of([_wallet_entry(row) for row in rows], limit, _entry_position)


def _wallet_entry(row: Mapping[str, Any]) -> WalletEntry:
    values = dict(row)
    program = ProgramSummary(
        id=values["program_id"],
        name=values.pop("program_name"),
        status=values.pop("program_status"),
        qualifying_threshold=values["qualifying_threshold"],
        display_content=values.pop("program_display_content"),
    )
    return WalletEntry(collection=CollectionRecord(**values), program=program)


async def list_stamps(
    db: Statements,
    collection_id: str,
    limit: int,
    after: Position | None = None,
    *,
    member_id: str | None = None,
) -> Page[StampRecord]:
    """A collection's stamps (voided ones included), oldest first; raises NotFound.

    With `member_id`, another member's collection is NotFound too.
    """
    if member_id is None:
        stmt, params = _STAMPS_OF.statement(after, limit, collection_id=collection_id)
    else:
        owned = {"collection_id": collection_id, "member_id": member_id}
        stmt, params = _STAMPS_OF_MEMBER.statement(after, limit, **owned)
    rows = await db.rows(stmt, params)
    if not rows:
        await _require_collection(db, collection_id, member_id)
    return page_of([StampRecord(**row) for row in rows], limit, _stamp_position)


async def list_rewards(
    db: Statements,
    *,
    member_id: str | None = None,
    collection_id: str | None = None,
    limit: int,
    after: Position | None = None,
) -> Page[RewardRecord]:
    """The rewards of one member or of one collection, oldest first.

    Given both, the collection's rewards if it is the member's, else NotFound.
    """
    if member_id is None and collection_id is None:
        raise ValueError("give member_id, collection_id or both")
    query = _REWARDS[(member_id is not None, collection_id is not None)]
    owners = {"member_id": member_id, "collection_id": collection_id}
    given = {name: value for name, value in owners.items() if value is not None}
    stmt, params = query.statement(after, limit, **given)
    rows = await db.rows(stmt, params)
    if not rows and collection_id is not None:
        await _require_collection(db, collection_id, member_id)
    return page_of([RewardRecord(**row) for row in rows], limit, _reward_position)


async def get_reward(
    db: Statements, reward_id: str, *, member_id: str | None = None
) -> RewardRecord:
    """One reward; raises NotFound, for another member's reward too when `member_id` is given."""
    params = {"reward_id": reward_id}
    rows = await _rows(db, (_REWARD_BY_ID, _REWARD_BY_ID_OF_MEMBER), params, member_id)
    if not rows:
        raise NotFound("reward", reward_id)
    return RewardRecord(**rows[0])


async def _rows(
    db: Statements, statements: tuple[Any, Any], params: dict[str, Any], member_id: str | None
) -> Sequence[Mapping[str, Any]]:
    """Rows of the first statement, or of its member-filtered twin when `member_id` is given."""
    if member_id is None:
        return await db.rows(statements[0], params)
    return await db.rows(statements[1], {**params, "member_id": member_id})


async def _require_collection(db: Statements, collection_id: str, member_id: str | None) -> None:
    params = {"collection_id": collection_id}
    [row] = await _rows(db, (_EXISTS, _EXISTS_OF_MEMBER), params, member_id)
    if not row["found"]:
        raise NotFound("stamp collection", collection_id)


def _entry_position(entry: WalletEntry) -> Position:
    return Position(entry.collection.created_at, entry.collection.id)


def _stamp_position(stamp: StampRecord) -> Position:
    return Position(stamp.created_at, stamp.id)


def _reward_position(reward: RewardRecord) -> Position:
    return Position(reward.created_at, reward.id)
