"""The programs a worker matches against, always at the revision the ledger holds.

A purchase must be judged by the programs as they stand when its batch is applied, never by
a stale copy (DESIGN, invariant 7). So every change of the programs bumps one ledger-wide
revision under an exclusive transaction-level lock, and every batch, at its start, takes the
same lock shared and then reads the revision: two cheap statements. A worker behind the
ledger loads what changed before it matches anything. The lock also keeps a program change
and a batch from interleaving: a lowered threshold is settled while no batch is stamping.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.batch import Incoming, Source
from rules import Matcher, ProgramDefinition
from rules.transactions import CardTransaction

log = logging.getLogger(__name__)

# The advisory lock every program change takes exclusively and every batch shared.
PROGRAMS_LOCK = 0x6175746F70726F67  # "autoprog"

DEFINITION_COLUMNS = (
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


async def lock_programs(conn: AsyncConnection) -> None:
    """Hold the programs for a change until the transaction ends; waits for running batches."""
    await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PROGRAMS_LOCK})


async def share_programs(conn: AsyncConnection) -> None:
    """Keep the programs from changing until the transaction ends; waits for a change.

    Read the programs in a later statement: a statement sees the ledger as it was when it
    began, so one that waited here would not see the change it waited for."""
    await conn.execute(text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": PROGRAMS_LOCK})


async def next_revision(conn: AsyncConnection) -> int:
    """A new revision for a change of the programs, committed in order with the others."""
    result = await conn.execute(
        text(
            """
            INSERT INTO program_revision (id, revision) VALUES (1, 1)
            ON CONFLICT (id) DO UPDATE SET revision = program_revision.revision + 1
            RETURNING revision
            """
        )
    )
    return int(result.scalar_one())


# The programs row as applied, JSON, keyed by column: what `program_versions` keeps.
_AS_APPLIED = ", ".join(f"'{column}', {column}" for column in DEFINITION_COLUMNS)


# Keeps the program's row `:id`, as it now stands, as the version it names.
KEEP_VERSION = text(
    "INSERT INTO program_versions (program_id, version, definition) "  # noqa: S608
    f"SELECT id, version, jsonb_build_object({_AS_APPLIED}) FROM programs "
    "WHERE id = :id ON CONFLICT (program_id, version) DO NOTHING"
)


async def keep_version(conn: AsyncConnection, program_id: str) -> None:
    """Keep the program's row, as it now stands, as the version it names, unless kept already:
    a reward is judged by the version it was triggered under (`ledger.reconcile`)."""
    await conn.execute(KEEP_VERSION, {"id": program_id})


_REVISION = text("SELECT revision FROM program_revision WHERE id = 1")


def definition_from_row(row: Mapping[Any, Any]) -> ProgramDefinition:
    return ProgramDefinition.model_validate({column: row[column] for column in DEFINITION_COLUMNS})


class ProgramCatalog:
    """Every program of the ledger (paused and archived too: undos still apply there), with a
    matcher of the active ones. Not thread-safe: sync and match from one task."""

    def __init__(self) -> None:
        self.matcher = Matcher()
        self.programs: dict[str, ProgramDefinition] = {}
        self.revision = -1

    async def sync(self, conn: AsyncConnection) -> list[str]:
        """Take the programs lock shared for the caller's transaction and catch up with the
        ledger; return the ids of the programs that changed."""
        await share_programs(conn)
        revision = int(await conn.scalar(_REVISION) or 0)
        if revision == self.revision:
            return []
        # Behind the ledger: load what changed. A ledger behind us was rebuilt: load it all.
        since = self.revision if revision > self.revision else -1
        if since < 0:
            self.matcher, self.programs = Matcher(), {}
        changed = await self._load(conn, since)
        self.revision = revision
        return changed

    async def _load(self, conn: AsyncConnection, since: int) -> list[str]:
        columns = ", ".join(DEFINITION_COLUMNS)
        rows = await conn.execute(
            text(f"SELECT {columns} FROM programs WHERE revision > :since"),  # noqa: S608
            {"since": since},
        )
        changed = []
        for row in rows.mappings():
            program = valid_definition(row)
            if program is not None and self.programs.get(program.id) != program:
                self.programs[program.id] = program
                self.matcher.upsert(program)
                changed.append(program.id)
        if changed:
            log.info("programs loaded: %s", ", ".join(sorted(changed)[:20]))
        return changed

    def incoming(self, tx: CardTransaction, source: Source) -> Incoming:
        """The event as the stamping use case takes it: judged against the active programs."""
        qualifying, related = self.matcher.judge(tx)
        return Incoming(tx, tuple(p.id for p in qualifying), source, related)


def valid_definition(row: Mapping[Any, Any]) -> ProgramDefinition | None:
    """The row's program, or None (logged) for one written by hand or by an older version:
    it must not stop every worker, nor the console."""
    try:
        return definition_from_row(row)
    except ValidationError as exc:
        log.error("program %s in the ledger is invalid, ignored: %s", row["id"], exc)
        return None
