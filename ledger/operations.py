"""The operations feed: every stamp, void, adjustment and reward of the ledger in one list.

Newest first, keyset-paged on (time, kind, id): a stamp's time is when it was made, a void's
when it was voided, an adjustment's and a reward's when they were recorded. Rows added while
someone pages are newer than the page they read, so they never shift, repeat or hide a row
of the pages still to come: they appear at the top, for the next read from the start.

One statement a page. Each kind is read from its own index on (time, id), newest first, at
most one page of it, after the cursor; the four are merged, cut to a page, and joined to
their collection and details by primary key. A member or program filter narrows each kind
to the collections it names first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text

from ledger.pages import Page, Position, check_limit
from ledger.statements import Statements

KINDS = ("adjustment", "reward", "stamp", "void")  # in the order of the keyset's `kind`


@dataclass(frozen=True)
class Operation:
    """One row of the feed; the fields of other kinds are None."""

    kind: str
    at: datetime
    id: str
    collection_id: str
    program_id: str
    member_id: str
    purchase_id: str | None
    transaction_id: str | None
    amount: int | None
    currency: str | None
    cycle: int | None
    void_transaction_id: str | None
    reward_type: str | None
    delta: int | None
    reason: str | None
    api_key_id: str | None


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the (time, kind, id) of its last row."""

    at: datetime
    kind: str
    id: str

    def position(self) -> Position:
        return Position(self.at, f"{self.kind}:{self.id}")

    @classmethod
    def of(cls, position: Position) -> Cursor:
        kind, _, key = str(position.key).partition(":")
        if kind not in KINDS or not key or (kind in ("stamp", "void") and not key.isdigit()):
            raise ValueError("not a position of the operations feed")
        return cls(position.created_at, kind, key)


# Per kind: its table, time column, id column (bigint for stamps and voids), and filters.
_BRANCHES = {
    "stamp": ("stamps x", "x.created_at", "x.id", "x.id", "NULL::text", "TRUE"),
    "void": ("stamps x", "x.voided_at", "x.id", "x.id", "NULL::text", "x.status = 'voided'"),
    "reward": ("rewards x", "x.created_at", "x.id", "NULL::bigint", "x.id", "TRUE"),
    "adjustment": (
        "stamp_adjustments x",
        "x.created_at",
        "x.id",
        "NULL::bigint",
        "x.id",
        "TRUE",
    ),
}
_OWNERS = {
    (True, False): "member_id = :member_id",
    (False, True): "program_id = :program_id",
    (True, True): "member_id = :member_id AND program_id = :program_id",
}


def _after(kind: str, at: str, key: str, cursor: Cursor | None) -> str:
    """The keyset condition of one kind's rows after the cursor, newest first."""
    if cursor is None:
        return "TRUE"
    if kind < cursor.kind:
        return f"{at} <= :after_at"
    if kind > cursor.kind:
        return f"{at} < :after_at"
    return f"({at}, {key}) < (:after_at, :after_{'num' if kind in ('stamp', 'void') else 'text'})"


def _branch(kind: str, cursor: Cursor | None, owners: str | None, span: Span) -> str:
    table, at, key, num, txt, where = _BRANCHES[kind]
    conditions = [where, _after(kind, at, key, cursor)]
    # Only the bounds given: an open bound would blur the planner's estimates.
    if span.since:
        conditions.append(f"{at} >= :since")
    if span.until:
        conditions.append(f"{at} < :until")
    if owners is not None:
        # A semi-join, so the planner sees how many collections the filter names: for many
        # (a big program) it walks the time index and keeps their rows; for few (a member,
        # a small program) it reads their rows by collection and sorts them.
        conditions.append(
            f"x.collection_id IN (SELECT id FROM stamp_collections WHERE {owners})"  # noqa: S608 (constant fragments)
        )
    # Constant fragments only: every value is a parameter.
    select = f"SELECT '{kind}'::text AS kind, {at} AS at, {num} AS num_id, {txt} AS text_id"
    where = " AND ".join(conditions)
    order = f"ORDER BY {at} DESC, {key} DESC LIMIT :page_rows"
    return f"({select}, x.collection_id FROM {table} WHERE {where} {order})"


@dataclass(frozen=True)
class Span:
    """Which bounds of the time range a request gives."""

    since: bool = False
    until: bool = False


def feed_statement(cursor: Cursor | None, member: bool, program: bool, span: Span = Span()) -> str:
    """The SQL of one page: built from constant fragments, every value a parameter."""
    owners = _OWNERS.get((member, program))
    branches = "\nUNION ALL\n".join(_branch(kind, cursor, owners, span) for kind in KINDS)
    return f"""
    WITH page AS (
        {branches}
        ORDER BY at DESC, kind DESC, num_id DESC, text_id DESC
        LIMIT :page_rows
    )
    SELECT page.kind, page.at, coalesce(page.num_id::text, page.text_id) AS id,
           c.id AS collection_id, c.program_id, c.member_id,
           s.purchase_id, coalesce(s.transaction_id, r.transaction_id) AS transaction_id,
           coalesce(s.amount, r.amount) AS amount, coalesce(s.currency, r.currency) AS currency,
           coalesce(s.cycle, r.cycle, a.cycle) AS cycle,
           CASE WHEN page.kind = 'void' THEN s.void_transaction_id END AS void_transaction_id,
           r.type AS reward_type, a.delta, a.reason, a.api_key_id
    FROM page
    JOIN stamp_collections c ON c.id = page.collection_id
    LEFT JOIN stamps s ON s.id = page.num_id
    LEFT JOIN rewards r ON page.kind = 'reward' AND r.id = page.text_id
    LEFT JOIN stamp_adjustments a ON page.kind = 'adjustment' AND a.id = page.text_id
    ORDER BY page.at DESC, page.kind DESC, page.num_id DESC, page.text_id DESC
    """  # noqa: S608 (constant fragments)


_STATEMENTS: dict[tuple[str | None, bool, bool, Span], Any] = {}


def _statement(cursor: Cursor | None, member: bool, program: bool, span: Span) -> Any:
    # Built once per shape, so the pool compiles and prepares each shape once.
    shape = (cursor.kind if cursor else None, member, program, span)
    if shape not in _STATEMENTS:
        _STATEMENTS[shape] = text(feed_statement(cursor, member, program, span))
    return _STATEMENTS[shape]


def feed_params(
    cursor: Cursor | None,
    limit: int,
    member_id: str | None,
    program_id: str | None,
    since: datetime | None,
    until: datetime | None,
) -> dict[str, Any]:
    params: dict[str, Any] = {"page_rows": limit + 1}  # one more: is there another page?
    if since is not None:
        params["since"] = since
    if until is not None:
        params["until"] = until
    if member_id is not None:
        params["member_id"] = member_id
    if program_id is not None:
        params["program_id"] = program_id
    if cursor is not None:
        params["after_at"] = cursor.at
        if cursor.kind in ("stamp", "void"):
            params["after_num"] = int(cursor.id)
        else:
            params["after_text"] = cursor.id
    return params


async def list_operations(
    db: Statements,
    *,
    limit: int,
    after: Cursor | None = None,
    member_id: str | None = None,
    program_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Page[Operation]:
    """One page of the feed, newest first, of rows recorded in [since, until)."""
    check_limit(limit)
    span = Span(since is not None, until is not None)
    stmt = _statement(after, member_id is not None, program_id is not None, span)
    params = feed_params(after, limit, member_id, program_id, since, until)
    rows = await db.rows(stmt, params)
    operations = [_operation(row) for row in rows]
    items = operations[:limit]
    more = len(operations) > limit
    last = items[-1] if more else None
    return Page(items=items, next=Cursor(last.at, last.kind, last.id).position() if last else None)


def _operation(row: Mapping[str, Any]) -> Operation:
    return Operation(**{name: row[name] for name in Operation.__dataclass_fields__})
