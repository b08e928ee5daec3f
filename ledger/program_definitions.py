"""Program definitions in the ledger: applied from files or the programs topic, read by workers."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.programs import upsert_program
from rules import ProgramDefinition

log = logging.getLogger(__name__)

# A program committed by a transaction that started before the last poll carries an older
# `updated_at`; polling with this overlap still sees it.
POLL_OVERLAP = timedelta(seconds=30)

_COLUMNS = (
    "id",
    "name",
    "qualifying_threshold",
    "reward_config",
    "display_content",
    "rules",
    "status",
    "active_from",
    "active_until",
    "version",
)


_SELECT = f"SELECT {', '.join(_COLUMNS)}, updated_at FROM programs"  # noqa: S608 (constants)


def definition_from_row(row: Mapping[Any, Any]) -> ProgramDefinition:
    return ProgramDefinition.model_validate({column: row[column] for column in _COLUMNS})


def program_values(program: ProgramDefinition) -> dict[str, Any]:
    """The `programs` row of a definition: JSON-ready columns, aware datetimes."""
    data = program.model_dump(mode="json")
    values = {column: data[column] for column in _COLUMNS}
    values["active_from"], values["active_until"] = program.active_from, program.active_until
    return values


async def apply_definitions(
    conn: AsyncConnection, programs: Sequence[ProgramDefinition]
) -> list[str]:
    """Upsert each definition unless the ledger holds a newer version; return those changed.

    An older version arriving late (a replayed topic) changes nothing.
    """
    return [p.id for p in programs if await upsert_program(conn, program_values(p))]


async def load_definitions(
    conn: AsyncConnection, since: datetime | None = None
) -> tuple[list[ProgramDefinition], datetime | None]:
    """Every program (or those updated after `since`, less the overlap) and the newest stamp."""
    query = _SELECT
    params: dict[str, Any] = {}
    if since is not None:
        query += " WHERE updated_at > :since"
        params["since"] = since - POLL_OVERLAP
    rows = (await conn.execute(text(query), params)).mappings().all()
    newest = max((row["updated_at"] for row in rows), default=since)
    return [p for p in map(_valid_definition, rows) if p is not None], newest


def _valid_definition(row: Mapping[Any, Any]) -> ProgramDefinition | None:
    # A row written by hand or by an older version must not stop every worker.
    try:
        return definition_from_row(row)
    except ValidationError as exc:
        log.error("program %s in the ledger is invalid, ignored: %s", row["id"], exc)
        return None
