"""`autostamp programs apply`: validate program files, sign them and publish them.

Definitions move forward only (docs/stamping.md): the worker applies a definition only when
its version is newer than the one the ledger holds, and dead-letters the version held with
other content. So a file that changes a program must carry a newer version, and this
command checks it against the ledger first: it publishes nothing when a file changes a
program the ledger holds at the file's version or a newer one, and names the version to
use, unless told `--bump`, which publishes such a file as the ledger's version + 1. A file
that says what the ledger holds already is published at the ledger's version: it changes
nothing, and the topic holds it signed with the current key (a key rotation needs that).

The ledger is read as it stands: a definition published and not yet applied is not in it.
The worker judges every definition again, so a second change published meanwhile at the
same version is dead-lettered there.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from autostamp import logs
from autostamp.commands import refusing_to_start, run_in_transaction
from autostamp.settings import Settings
from ledger.programs import held_programs, program_values, same_content
from rules import ProgramDefinition, ProgramFileError, load_program


class BehindTheLedger(ValueError):
    """A file that changes a program at a version no newer than the one the ledger holds."""


def forward(
    program: ProgramDefinition, held: Mapping[Any, Any] | None, *, bump: bool
) -> ProgramDefinition:
    """The definition to publish for a file's `program`, given the program the ledger
    `held`; raises BehindTheLedger for a change the worker would not apply."""
    if held is None or program.version > held["version"]:
        return program
    if same_content(held, program_values(program)):
        return program.model_copy(update={"version": held["version"]})
    if bump:
        return program.model_copy(update={"version": held["version"] + 1})
    newer = held["version"] + 1
    raise BehindTheLedger(
        f"{program.id}: the ledger holds version {held['version']}, and this file (version "
        f"{program.version}) changes it; raise `version` to {newer} or more, or pass --bump "
        f"to publish it as version {newer}"
    )


def apply(
    files: Annotated[list[Path], typer.Argument(help="Program definitions (YAML or JSON).")],
    bump: Annotated[
        bool,
        typer.Option(
            "--bump",
            help="Publish a file that changes a program at a version no newer than the "
            "ledger's as the ledger's version + 1.",
        ),
    ] = False,
) -> None:
    """Validate program files, sign them and publish them on the programs topic; workers pick
    them up. A change needs a higher `version` than the ledger holds (or --bump); otherwise
    nothing is published and the version to use is named."""
    from autostamp.wiring import kafka_client_config, programs_signing_keys
    from streams.kafka import KafkaPublisher
    from streams.program_signing import signed_records

    settings = Settings()
    logs.configure(settings.log_level.upper())
    with refusing_to_start():
        keys = programs_signing_keys(settings)
    programs = _load(files, settings.default_currency)
    ids = [program.id for program in programs]
    held = run_in_transaction(lambda conn: held_programs(conn, ids), settings)
    published = _forward_all(programs, held, bump)
    records = signed_records(settings.kafka.topics.programs, published, keys)
    KafkaPublisher(kafka_client_config(settings)).publish(records)
    for file, program in zip(programs, published, strict=True):
        said = "" if file.version == program.version else f", the file says {file.version}"
        typer.echo(f"published {program.id} version {program.version} ({program.name}){said}")


def _load(files: list[Path], currency: str | None) -> list[ProgramDefinition]:
    try:
        return [load_program(path, default_currency=currency) for path in files]
    except ProgramFileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _forward_all(
    programs: list[ProgramDefinition], held: Mapping[str, Mapping[Any, Any]], bump: bool
) -> list[ProgramDefinition]:
    """Every file as it is published, or, if any is behind the ledger, exit 1 naming each:
    the files are published together or not at all."""
    published, behind = [], []
    for program in programs:
        try:
            published.append(forward(program, held.get(program.id), bump=bump))
        except BehindTheLedger as exc:
            behind.append(str(exc))
    for reason in behind:
        typer.echo(f"error: {reason}", err=True)
    if behind:
        raise typer.Exit(1)
    return published
