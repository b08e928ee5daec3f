"""Small helpers for the ledger's hand-written SQL."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


def as_json(value: object) -> str:
    """A parameter as one JSON text: orjson writes it far faster than psycopg dumps arrays."""
    return orjson.dumps(value).decode()


def day_bounds(day: date, timezone: str) -> tuple[datetime, datetime]:
    """The first instant of `day` and of the day after, on the clock of `timezone`."""
    zone = ZoneInfo(timezone)
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    following = day + timedelta(days=1)
    return start, datetime(following.year, following.month, following.day, tzinfo=zone)


async def insert_rows(
    conn: AsyncConnection,
    table: str,
    columns: dict[str, str],
    rows: list[dict[str, object]],
    on_conflict: str = "",
) -> None:
    """Insert `rows` in one statement; `columns` maps each column to its SQL type.

    The rows go as one JSON document: orjson writes it far faster than psycopg dumps one array
    per column. `table`, `columns` and `on_conflict` are the caller's constants, never input.
    """
    if not rows:
        return
    names = ", ".join(columns)
    typed = ", ".join(f"{name} {kind}" for name, kind in columns.items())
    statement = (
        f"INSERT INTO {table} ({names}) SELECT {names} "  # noqa: S608 (constants)
        f"FROM json_to_recordset(CAST(:rows AS json)) AS r({typed}) {on_conflict}"
    )
    await conn.execute(text(statement), {"rows": as_json(rows)})
