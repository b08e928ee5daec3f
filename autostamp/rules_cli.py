"""`autostamp rules`: check program files and explain matching decisions without a database."""

from pathlib import Path
from typing import Annotated

import typer

from autostamp.settings import Settings
from rules import (
    CardTransaction,
    InvalidTransaction,
    Matcher,
    ProgramDefinition,
    ProgramFileError,
    describe,
    explain_program,
    load_program,
    parse_transaction,
)

app = typer.Typer(
    help="Qualifying rules: explain why a transaction does or does not stamp.",
    no_args_is_help=True,
)

ProgramFiles = Annotated[
    list[Path],
    typer.Option("--program", "-p", help="A program file (.yaml, .yml, .json); repeat for more."),
]
TransactionFile = Annotated[
    Path, typer.Option("--transaction", "-t", help="A card transaction as JSON.")
]


@app.callback()
def _group() -> None:
    # A callback keeps `explain` a subcommand even when this app runs on its own.
    pass


@app.command()
def explain(program: ProgramFiles, transaction: TransactionFile) -> None:
    """Say for each program whether the transaction matched, and if not, which condition failed."""
    programs = [_load(path) for path in program]
    tx = _read_transaction(transaction)
    decisions = Matcher(programs).explain(tx)
    for line in describe(decisions, tx):
        typer.echo(line)
    reached = {decision.program_id for decision in decisions}
    for unreached in sorted((p for p in programs if p.id not in reached), key=lambda p: p.id):
        miss = explain_program(unreached, tx)
        typer.echo(f"{unreached.id}: not a candidate, {miss.condition}: {miss.reason}")


def _load(path: Path) -> ProgramDefinition:
    try:
        return load_program(path, default_currency=Settings().default_currency)
    except ProgramFileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _read_transaction(path: Path) -> CardTransaction:
    try:
        return parse_transaction(path.read_bytes())
    except OSError as exc:
        typer.echo(f"error: {path}: cannot be read: {exc.strerror}", err=True)
        raise typer.Exit(2) from exc
    except InvalidTransaction as exc:
        typer.echo(f"error: {path}: {exc.reason}", err=True)
        raise typer.Exit(2) from exc
