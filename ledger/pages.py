"""Keyset pagination on (created_at, id): pages stay stable while rows are being added."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, bindparam, tuple_
from sqlalchemy.orm import InstrumentedAttribute

T = TypeVar("T")

MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class Position:
    """Where a page ended: the sort key of its last row."""

    created_at: datetime
    key: str | int


@dataclass(frozen=True)
class Page(Generic[T]):
    """Up to `limit` items in (created_at, id) order, or its reverse; `next` is set only when
    more rows follow."""

    items: Sequence[T]
    next: Position | None

    @property
    def more(self) -> bool:
        return self.next is not None


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"page size must be between 1 and {MAX_PAGE_SIZE}, not {limit}")


def keyset(
    stmt: Select[*tuple[Any, ...]],
    created_at: InstrumentedAttribute[datetime],
    key: InstrumentedAttribute[Any],
    after: Position | None,
    limit: int,
    newest_first: bool = False,
) -> Select[*tuple[Any, ...]]:
    """Order by (created_at, key), descending if `newest_first`, start after `after`, and
    fetch one row more than a page. An index on the pair serves either order."""
    check_limit(limit)
    if after is not None:
        start = tuple_(
            bindparam(None, after.created_at, type_=created_at.type),
            bindparam(None, after.key, type_=key.type),
        )
        position = tuple_(created_at, key)
        stmt = stmt.where(position < start if newest_first else position > start)
    order = (created_at.desc(), key.desc()) if newest_first else (created_at, key)
    # The extra row tells whether another page exists without a COUNT.
    return stmt.order_by(*order).limit(limit + 1)


class KeysetQuery:
    """A `keyset` query built once, for a caller on a hot path: only its parameters vary.

    Statement construction costs more than a primary-key lookup in PostgreSQL; a statement
    object reused is also compiled once (SQLAlchemy caches by statement).
    """

    def __init__(
        self,
        stmt: Select[*tuple[Any, ...]],
        created_at: InstrumentedAttribute[datetime],
        key: InstrumentedAttribute[Any],
    ) -> None:
        ordered = stmt.order_by(created_at, key).limit(bindparam("page_rows"))
        start = tuple_(
            bindparam("after_created_at", type_=created_at.type),
            bindparam("after_key", type_=key.type),
        )
        self.first = ordered
        self.after = ordered.where(tuple_(created_at, key) > start)

    def statement(
        self, after: Position | None, limit: int, **params: Any
    ) -> tuple[Select[*tuple[Any, ...]], dict[str, Any]]:
        """The statement and its parameters for the page of `limit` rows after `after`."""
        check_limit(limit)
        params["page_rows"] = limit + 1  # one more row tells whether another page exists
        if after is None:
            return self.first, params
        params["after_created_at"], params["after_key"] = after.created_at, after.key
        return self.after, params


def page_of(rows: Sequence[T], limit: int, position: Callable[[T], Position]) -> Page[T]:
    """Cut the rows fetched by `keyset` into a page."""
    items = rows[:limit]
    more = len(rows) > limit
    return Page(items=items, next=position(items[-1]) if more else None)
