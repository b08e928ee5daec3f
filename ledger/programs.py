"""Loyalty programs: the read side publishers see, and the changes the program sync applies.

A program is visible to publishers (listed, readable, open to enrollment) while its status is
``active`` or ``paused`` and its active window has not ended. Archived or ended programs stay in
the table, so collections that point at them keep their history.

Definitions move forward only: one applies when its version is newer than the one the ledger
holds; an older one changes nothing, and the version held with other content is refused
(`judge_version`). A change takes the programs lock exclusively (`ledger.catalog`) before it
reads the program it replaces, so no batch is stamping and no other change commits in
between, and stamps a new ledger-wide revision on the row: a worker sees it before its next
batch. A lowered threshold rewards, in the same transaction, every collection whose count
reaches it (`ledger.thresholds`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, and_, any_, bindparam, func, or_, select
from sqlalchemy.dialects.postgresql import array, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.catalog import (
    DEFINITION_COLUMNS,
    definition_from_row,
    keep_version,
    lock_programs,
    next_revision,
)
from ledger.errors import DataRefused, NotFound
from ledger.pages import KeysetQuery, Page, Position, page_of
from ledger.schema import Program
from ledger.settlement import settle_program
from ledger.statements import Statements
from rules import ProgramDefinition

VISIBLE_STATUSES = ("active", "paused")

_REQUIRED = ("id", "name", "qualifying_threshold", "reward_config", "display_content", "rules")
_DEFAULTS: dict[str, Any] = {
    "status": "active",
    "active_from": None,
    "active_until": None,
    "version": 1,
}
_CONTENT = (*_REQUIRED[1:], *_DEFAULTS)
_DEFINITION = tuple(Program.__table__.c[name] for name in DEFINITION_COLUMNS)
_HELD = select(*_DEFINITION).where(Program.id == bindparam("id"))


@dataclass(frozen=True)
class ProgramRecord:
    """A program as publishers see it."""

    id: str
    name: str
    qualifying_threshold: int
    reward_config: dict[str, Any]
    display_content: dict[str, Any]
    status: str
    active_from: datetime | None
    active_until: datetime | None
    created_at: datetime
    updated_at: datetime


_COLUMNS = (
    Program.id,
    Program.name,
    Program.qualifying_threshold,
    Program.reward_config,
    Program.display_content,
    Program.status,
    Program.active_from,
    Program.active_until,
    Program.created_at,
    Program.updated_at,
)


def visible() -> ColumnElement[bool]:
    """The SQL condition for a program publishers may see and enroll in."""
    return and_(
        Program.status == any_(array(VISIBLE_STATUSES)),
        or_(Program.active_until.is_(None), Program.active_until > func.now()),
    )


def _position(program: ProgramRecord) -> Position:
    return Position(program.created_at, program.id)


_VISIBLE = KeysetQuery(select(*_COLUMNS).where(visible()), Program.created_at, Program.id)
_VISIBLE_BY_ID = select(*_COLUMNS).where(Program.id == bindparam("program_id"), visible())


async def list_programs(
    db: Statements, limit: int, after: Position | None = None
) -> Page[ProgramRecord]:
    """Visible programs, oldest first."""
    stmt, params = _VISIBLE.statement(after, limit)
    rows = await db.rows(stmt, params)
    return page_of([ProgramRecord(**row) for row in rows], limit, _position)


async def get_program(db: Statements, program_id: str) -> ProgramRecord:
    """One visible program; raises NotFound for an unknown, archived or ended one."""
    rows = await db.rows(_VISIBLE_BY_ID, {"program_id": program_id})
    if not rows:
        raise NotFound("loyalty program", program_id)
    return ProgramRecord(**rows[0])


def _row(row_values: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(row_values) - {*_REQUIRED, *_DEFAULTS}
    missing = [name for name in _REQUIRED if name not in row_values]
    if unknown or missing:
        raise ValueError(f"program row: unknown columns {sorted(unknown)}, missing {missing}")
    values = {**_DEFAULTS, **row_values}
    values["status"] = str(values["status"])
    return values


class Verdict(StrEnum):
    """What the ledger did with a program definition: definitions move forward only."""

    APPLIED = "applied"  # a program new to the ledger, or a version newer than the one held
    UNCHANGED = "unchanged"  # the version held, with the same content
    SUPERSEDED = "superseded"  # older than the version held: a replay, which changes nothing


class ProgramVersionReused(DataRefused):
    """The version of a program the ledger holds, with other content: refused, never applied.

    Were it applied, anyone able to write to the programs topic could undo a pause or an edit
    by sending an earlier signed definition of the same version again."""


def judge_version(held: Mapping[Any, Any] | None, values: Mapping[str, Any]) -> Verdict:
    """What a definition (`values`, a programs row) does to the program the ledger `held`.

    Raises ProgramVersionReused for the version held with other content."""
    if held is None or values["version"] > held["version"]:
        return Verdict.APPLIED
    if values["version"] < held["version"]:
        return Verdict.SUPERSEDED
    if same_content(held, values):
        return Verdict.UNCHANGED
    version = held["version"]
    raise ProgramVersionReused(
        f"program {values['id']!r} version {version} is the version the ledger holds, with "
        f"other content; an edit, a pause or a resume is a new version: version "
        f"{version + 1} or more"
    )


def same_content(a: Mapping[Any, Any], b: Mapping[Any, Any]) -> bool:
    """Whether two programs rows define the same program, whatever their versions."""
    return _content(a) == _content(b)


def _content(values: Mapping[Any, Any]) -> dict[str, Any]:
    # Read as a definition when it is one, so a row written before a rule gained a default
    # still equals the same definition written now.
    try:
        read: Mapping[Any, Any] = program_values(definition_from_row(values))
    except ValidationError:
        read = values
    return {name: read[name] for name in _CONTENT if name != "version"}


async def upsert_program(conn: AsyncConnection, row_values: Mapping[str, Any]) -> bool:
    """Write a program if the definition moves it forward; True when the table changed.

    `row_values` holds the columns `id, name, qualifying_threshold, reward_config,
    display_content, rules` and optionally `status, active_from, active_until, version`
    (omitted ones take their defaults, so the row is replaced whole). JSON columns take
    JSON-ready values, e.g. from ``definition.model_dump(mode="json")``; the window takes
    aware datetimes. Judged by `judge_version`: raises ProgramVersionReused.
    """
    verdict, _ = await _put(conn, _row(row_values))
    return verdict is Verdict.APPLIED


async def apply_definition(
    conn: AsyncConnection, program: ProgramDefinition, now: datetime
) -> Verdict:
    """Apply a definition if its version is newer than the one the ledger holds.

    An older version (a replayed topic) changes nothing; the version held with other content
    raises ProgramVersionReused. A definition that lowers its program's threshold rewards, at
    once, the collections whose count reaches it.
    """
    verdict, held = await _put(conn, program_values(program))
    lowered = held is not None and program.qualifying_threshold < held["qualifying_threshold"]
    if verdict is Verdict.APPLIED and lowered:
        await settle_program(conn, program, now)
    return verdict


async def _put(
    conn: AsyncConnection, values: Mapping[str, Any]
) -> tuple[Verdict, Mapping[Any, Any] | None]:
    """Judge `values` against the row held and write it if it applies; both, under the lock,
    so no other change commits between what was read and what is written."""
    await lock_programs(conn)
    held = (await conn.execute(_HELD, {"id": values["id"]})).mappings().first()
    verdict = judge_version(held, values)
    if verdict is Verdict.APPLIED:
        revision = await next_revision(conn)
        row = insert(Program).values(**values, revision=revision)
        replaced = {name: row.excluded[name] for name in (*_CONTENT, "revision")}
        await conn.execute(
            row.on_conflict_do_update(
                index_elements=[Program.id], set_={**replaced, "updated_at": func.now()}
            )
        )
        await keep_version(conn, values["id"])
    return verdict, held


def program_values(program: ProgramDefinition) -> dict[str, Any]:
    """The `programs` row of a definition: JSON-ready columns, aware datetimes."""
    data = program.model_dump(mode="json")
    values = {column: data[column] for column in DEFINITION_COLUMNS}
    values["active_from"], values["active_until"] = program.active_from, program.active_until
    return values


async def held_programs(
    conn: AsyncConnection, program_ids: Sequence[str]
) -> dict[str, Mapping[Any, Any]]:
    """The rows the ledger holds of `program_ids`, whatever their status, by program id."""
    stmt = select(*_DEFINITION).where(Program.id.in_(list(program_ids)))
    return {row["id"]: row for row in (await conn.execute(stmt)).mappings()}


async def stored_versions(conn: AsyncConnection, program_ids: Sequence[str]) -> dict[str, int]:
    """The version the ledger holds of each of `program_ids` it holds, whatever its status."""
    stmt = select(Program.id, Program.version).where(Program.id.in_(list(program_ids)))
    return {row.id: row.version for row in await conn.execute(stmt)}
