"""`autostamp programs backtest`: what a program would have done over past transactions."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from ledger.backtest import BacktestReport, Figures, backtest
from ledger.sieve import select
from rules import ProgramDefinition, ProgramFileError, load_program


def run(
    program_file: Path,
    transactions: Path | None,
    topic: str | None,
    start: datetime | None,
    end: datetime | None,
    enrolled_from: datetime | None,
    as_json: bool,
) -> None:
    """Load, select, replay and print; nothing is written."""
    from autostamp.settings import Settings

    settings = Settings()
    try:
        program = load_program(program_file, default_currency=settings.default_currency)
    except ProgramFileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    lines = _source(settings, transactions, topic, start, end)
    enrolled_at = None if enrolled_from is None else _midnight(program, enrolled_from.date())
    report = backtest(program, select(lines, program), enrolled_at)
    if as_json:
        typer.echo(json.dumps(report.as_json(), indent=2))
    else:
        typer.echo("\n".join(table(report)))


def _source(
    settings: object,
    transactions: Path | None,
    topic: str | None,
    start: datetime | None,
    end: datetime | None,
) -> Iterable[tuple[str, bytes]]:
    from ledger.transaction_files import numbered_lines
    from streams.feeds import read_window

    if (transactions is None) == (topic is None):
        raise typer.BadParameter("give either --transactions FILE or --topic NAME")
    if transactions is not None:
        return numbered_lines(transactions)
    if start is None or end is None or start.tzinfo is None or end.tzinfo is None:
        raise typer.BadParameter("--topic needs --from and --to, with a UTC offset")
    from autostamp.settings import Settings
    from autostamp.wiring import kafka_client_config

    assert isinstance(settings, Settings) and topic is not None
    return read_window(kafka_client_config(settings), topic, start, end)


def _midnight(program: ProgramDefinition, day: date) -> datetime:
    return datetime.combine(day, time(), ZoneInfo(program.rules.timezone))


COLUMNS = ("day", "qualifying", "stamps", "voids", "rewards", "payout", "members", "near misses")


def table(report: BacktestReport) -> Iterator[str]:
    """The report for a person: one row per day, the total, then what was read and refused."""
    rows = [_row(day.isoformat(), f) for day, f in report.days.items()]
    rows.append(_row("total", report.total))
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    program = report.program
    yield f"{program.id} ({program.name}), threshold {program.qualifying_threshold}"
    yield "  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip()
    for number, row in enumerate(rows):
        if number == len(rows) - 1:
            yield "  ".join("-" * w for w in widths)
        yield "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
    lines = report.selection
    yield (
        f"transactions: read={lines.read} skipped={lines.skipped} (other merchants) "
        f"invalid={lines.refused}"
    )
    for where, reason in lines.reasons:
        yield f"  refused {where}: {reason}"


def _row(label: str, f: Figures) -> tuple[str, ...]:
    payout = " ".join(f"{amount} {currency}" for currency, amount in sorted(f.payout.items()))
    misses = " ".join(f"{c}={n}" for c, n in f.near_misses.most_common())
    counts = (f.qualifying, f.stamps, f.voids, f.rewards)
    return (label, *map(str, counts), payout or "0", str(f.members), misses or "-")


MOMENT = ["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"]
Program = Annotated[Path, typer.Argument(help="The program definition (YAML or JSON).")]
Transactions = Annotated[
    Path | None, typer.Option(help="Past transactions: .jsonl (one per line) or .csv.")
]
Topic = Annotated[str | None, typer.Option(help="Read a window of this topic instead.")]
From = Annotated[
    datetime | None,
    typer.Option(
        "--from",
        formats=MOMENT,
        help="With --topic: the window's start (RFC 3339, with an offset), by message time.",
    ),
]
To = Annotated[
    datetime | None,
    typer.Option("--to", formats=MOMENT, help="With --topic: the window's end (exclusive)."),
]
EnrolledFrom = Annotated[
    datetime | None,
    typer.Option(
        formats=["%Y-%m-%d"],
        help="Members enrolled from this date (midnight on the program's clock), else ever.",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="The report as JSON, for machines.")]
