"""`autostamp dead-letters ...`: list, show and replay the messages the worker refused.

`replay` puts a dead letter's original bytes back on the transactions topic, keyed as
before, once the cause is fixed (a program loaded, a bank's feed corrected). The ledger
keeps every event's effect exactly once, so replaying what was already applied, or the same
letter twice, changes nothing; a message still bad becomes a new dead letter.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from autostamp.commands import run_in_transaction
from autostamp.settings import Settings
from autostamp.wiring import kafka_client_config
from ledger import dead_letters
from ledger.dead_letters import DeadLetter

app = typer.Typer(help="Messages the worker refused, with why.", no_args_is_help=True)
_ROW = "{:>8}  {:<20}  {:<28}  {:>9}  {:<9}  {}"


def _place(letter: DeadLetter) -> str:
    item = f"#{letter.item}" if letter.item >= 0 else ""
    return f"{letter.source_topic}[{letter.source_partition}]@{letter.source_offset}{item}"


def _state(letter: DeadLetter) -> str:
    if letter.replayed_at is not None:
        return "replayed"
    if letter.publish_error is not None:
        return "unpublished"
    return "published" if letter.published_at is not None else "pending"


@app.command("list")
def list_letters(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 50,
    before: Annotated[int | None, typer.Option(help="Only letters older than this id.")] = None,
    replayed: Annotated[
        bool | None, typer.Option("--replayed/--not-replayed", help="Filter on replay.")
    ] = None,
) -> None:
    """The newest dead letters, one line each, with their reason."""
    letters = run_in_transaction(
        lambda conn: dead_letters.list_dead_letters(conn, limit, before, replayed)
    )
    typer.echo(_ROW.format("ID", "CREATED", "FROM", "BYTES", "STATE", "REASON"))
    for d in letters:
        created = d.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        typer.echo(_ROW.format(d.id, created, _place(d), d.size, _state(d), d.reason[:120]))


@app.command()
def show(
    letter_id: Annotated[int, typer.Argument(help="The dead letter's id.")],
    output: Annotated[
        Path | None, typer.Option(help="Write the message's bytes to this file ('-': stdout).")
    ] = None,
) -> None:
    """Everything the ledger holds about one dead letter; its bytes with --output."""
    d = run_in_transaction(lambda conn: dead_letters.get_dead_letter(conn, letter_id))
    if output is not None:
        if str(output) == "-":
            sys.stdout.buffer.write(d.value)
        else:
            output.write_bytes(d.value)
        return
    typer.echo(f"id:       {d.id}")
    typer.echo(f"from:     {_place(d)}")
    typer.echo(f"key:      {d.key!r}")
    typer.echo(f"bytes:    {d.size} (sha256 {d.sha256}){'' if d.whole else ', kept in part'}")
    typer.echo(f"state:    {_state(d)}{': ' + d.publish_error if d.publish_error else ''}")
    typer.echo(f"reason:   {d.reason}")
    preview = d.value[:2000].decode("utf-8", errors="replace")
    typer.echo(f"message:  {preview}{' ...' if d.size > 2000 else ''}")


@app.command()
def replay(
    letter_ids: Annotated[list[int], typer.Argument(help="The dead letters to replay.")],
    again: Annotated[bool, typer.Option(help="Replay letters replayed before, too.")] = False,
) -> None:
    """Put the original messages back on the transactions topic, keyed as they were."""
    from streams.kafka import KafkaPublisher, ProducerRecord

    settings = Settings()
    letters = run_in_transaction(lambda conn: _fetch(conn, letter_ids), settings)
    chosen, refused = dead_letters.replayable(letters, again)
    for d, why in refused:
        hint = " (use --again)" if d.whole else ""
        typer.echo(f"not replayed: dead letter {d.id}: {why}{hint}", err=True)
    topic = settings.kafka.topics.transactions
    records = [ProducerRecord(topic, d.value, d.key) for d in chosen]
    KafkaPublisher(kafka_client_config(settings)).publish(records)
    now = datetime.now(UTC)
    run_in_transaction(
        lambda conn: dead_letters.mark_replayed(conn, [d.id for d in chosen], now), settings
    )
    typer.echo(f"replayed {len(chosen)} dead letters onto {topic}")
    if refused:
        raise typer.Exit(1)


async def _fetch(conn: AsyncConnection, ids: list[int]) -> list[DeadLetter]:
    return [await dead_letters.get_dead_letter(conn, i) for i in ids]
