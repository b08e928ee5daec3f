"""Loyalty programs: the read side publishers see, and the changes the program sync applies.

A program is visible to publishers (listed, readable, open to enrollment) while its status is
``active`` or ``paused`` and its active window has not ended. Archived or ended programs stay in
the table, so collections that point at them keep their history.

Every change of a program takes the programs lock exclusively (`ledger.catalog`), so no batch
is stamping while it commits, and stamps a new ledger-wide revision on the row: a worker sees
it before its next batch. A lowered threshold rewards, in the same transaction, every
collection whose count reaches it (`ledger.thresholds`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, any_, bindparam, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import array, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.catalog import DEFINITION_COLUMNS, lock_programs, next_revision
from ledger.errors import NotFound
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


async def upsert_program(conn: AsyncConnection, row_values: Mapping[str, Any]) -> bool:
    """Insert or replace a program; True when the table changed.

    `row_values` holds the columns `id, name, qualifying_threshold, reward_config,
    display_content, rules` and optionally `status, active_from, active_until, version`
    (omitted ones take their defaults, so the row is replaced whole). JSON columns take
    JSON-ready values, e.g. from ``definition.model_dump(mode="json")``; the window takes
    aware datetimes. An older version never overwrites a newer one; the same version
    replaces the row only when its content differs, so replaying a definition is a no-op.
    """
    await lock_programs(conn)
    values = _row(row_values)
    row = insert(Program).values(**values)
    new = row.excluded
    stored = tuple_(*(Program.__table__.c[name] for name in _CONTENT))
    incoming = tuple_(*(new[name] for name in _CONTENT))
    newer = or_(
        Program.version < new.version,
        and_(Program.version == new.version, stored.is_distinct_from(incoming)),
    )
    stmt = row.on_conflict_do_update(
        index_elements=[Program.id],
        set_={**{name: new[name] for name in _CONTENT}, "updated_at": func.now()},
        where=newer,
    ).returning(Program.id)
    if (await conn.execute(stmt)).first() is None:
        return False
    revision = await next_revision(conn)
    await conn.execute(update(Program).where(Program.id == values["id"]).values(revision=revision))
    return True


async def apply_definitions(
    conn: AsyncConnection, programs: Sequence[ProgramDefinition], now: datetime
) -> list[str]:
    """Upsert each definition unless the ledger holds a newer version; return those changed.

    An older version arriving late (a replayed topic) changes nothing. A definition that
    lowers its program's threshold rewards, at once, the collections whose count reaches it.
    """
    # The lock first: a threshold read before it may be replaced by a change committing
    # while this one waits, and the settlement would then start from the wrong one.
    await lock_programs(conn)
    changed = []
    for program in programs:
        before = await conn.scalar(
            select(Program.qualifying_threshold).where(Program.id == program.id)
        )
        if await upsert_program(conn, program_values(program)):
            changed.append(program.id)
            if before is not None and program.qualifying_threshold < before:
                await settle_program(conn, program, now)
    return changed


def program_values(program: ProgramDefinition) -> dict[str, Any]:
    """The `programs` row of a definition: JSON-ready columns, aware datetimes."""
    data = program.model_dump(mode="json")
    values = {column: data[column] for column in DEFINITION_COLUMNS}
    values["active_from"], values["active_until"] = program.active_from, program.active_until
    return values


async def stored_versions(conn: AsyncConnection, program_ids: Sequence[str]) -> dict[str, int]:
    """The version the ledger holds of each of `program_ids` it holds, whatever its status."""
    stmt = select(Program.id, Program.version).where(Program.id.in_(list(program_ids)))
    return {row.id: row.version for row in await conn.execute(stmt)}
