"""Opaque cursors over the ledger's keyset pages, and the pagination parts of the wire models."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ledger.pages import MAX_PAGE_SIZE, Page, Position
from publisher_api.errors import InvalidRequest

_MAX_CURSOR = 512


def _whole_number(value: object) -> object:
    # JSON does not tell 20 from 20.0, and JSON Schema counts both as integers.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class Pagination(BaseModel):
    """Which page to fetch: up to `limit` items after `cursor` (null for the first page)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    limit: Annotated[
        int,
        Field(ge=1, le=MAX_PAGE_SIZE, description="Items per page."),
        BeforeValidator(_whole_number),
    ] = 50
    cursor: Annotated[
        str | None,
        Field(
            max_length=_MAX_CURSOR,
            pattern=r"^[A-Za-z0-9_-]+$",
            description="The `page.cursor` of the previous answer, as it was.",
        ),
    ] = None


class PageInfo(BaseModel):
    """Where a page sits: `more` is true only when another page exists, and `cursor` fetches it."""

    page_size: int
    cursor: str | None
    more: bool


def encode(kind: str, position: Position) -> str:
    raw = json.dumps([kind, position.created_at.isoformat(), position.key], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(kind: str, cursor: str | None, key_type: type[str] | type[int] = str) -> Position | None:
    """The position a cursor of `kind` names; InvalidRequest for anything this API did not issue."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        tag, created_at, key = json.loads(raw)
        position = Position(datetime.fromisoformat(created_at), key)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidRequest("pagination.cursor: not a cursor this API issued") from exc
    if tag != kind or type(key) is not key_type or position.created_at.tzinfo is None:
        raise InvalidRequest(f"pagination.cursor: not a cursor of {kind}")
    return position


def page_info(kind: str, page: Page[Any], limit: int) -> PageInfo:
    cursor = encode(kind, page.next) if page.next is not None else None
    return PageInfo(page_size=limit, cursor=cursor, more=page.more)
