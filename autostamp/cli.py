"""The `autostamp` command: one entry point for every process and operator task."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import secrets
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from autostamp import (
    adjust_cli,
    backtest_cli,
    console_cli,
    dead_letters_cli,
    keys_cli,
    logs,
    members_cli,
    programs_cli,
    rules_cli,
    webhooks_cli,
)
from autostamp.commands import keyring_or_exit, refusing_to_start
from autostamp.settings import Settings
from autostamp.wiring import (
    async_engine,
    delivery_config,
    network_policy,
    run_dispatcher,
    serve_metrics,
)
from webhooks.metrics import DispatcherMetrics

if TYPE_CHECKING:
    pass

app = typer.Typer(
    help="Auto-stamp card-linked loyalty programs, exactly once.",
    no_args_is_help=True,
    # `main` reports unexpected errors through the redacted log instead.
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The ledger database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_cli.app, name="keys")
app.add_typer(rules_cli.app, name="rules")
app.add_typer(webhooks_cli.app, name="webhooks")
app.add_typer(dead_letters_cli.app, name="dead-letters")
app.add_typer(members_cli.app, name="members")
app.add_typer(console_cli.app, name="console")
# A negative DELTA (`-2`) is an argument, not an unknown option.
app.command("adjust", context_settings={"ignore_unknown_options": True})(adjust_cli.adjust)


BENCHMARKS = ("rules", "pipeline", "api", "reads", "webhooks", "ingest", "backtest", "console")


def _settings() -> Settings:
    settings = Settings()
    logs.configure(settings.log_level.upper())
    return settings


async def _dispatch(settings: Settings) -> None:
    config = delivery_config(settings.webhooks, keyring_or_exit(settings), network_policy(settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    metrics = DispatcherMetrics()
    metrics_port = settings.metrics.dispatcher_port
    serve_metrics(metrics.registry, settings.metrics.host, metrics_port, "dispatcher")
    engine = async_engine(settings)
    try:
        await run_dispatcher(engine, config, stop, metrics=metrics)
    finally:
        await engine.dispose()


@app.command()
def up() -> None:
    """Run everything: embedded PostgreSQL and broker unless configured, worker, API, dispatcher."""
    from autostamp.supervisor import up as run_up

    with refusing_to_start():
        settings = _settings()
        keyring_or_exit(settings)
        run_up(settings)


@app.command()
def demo(
    rate: Annotated[
        float, typer.Option(min=0.1, max=10_000, help="Card transactions a second, in all.")
    ] = 20.0,
    duration: Annotated[
        float | None, typer.Option(min=1, help="Seconds to play the feed; unset: until Ctrl-C.")
    ] = None,
    members: Annotated[
        int, typer.Option(min=1, max=1000, help="Members, each enrolled in every demo program.")
    ] = 6,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the feed's choices; unset: a random one, printed.")
    ] = None,
) -> None:
    """Play a synthetic bank feed to demo programs and members; print a console sign-in link.

    It uses the stack whose API answers on the configured port, else starts `autostamp up`
    and stops it when the demo ends.
    """
    from autostamp.demo import DemoOptions, run

    logs.configure("WARNING")
    chosen = secrets.randbelow(2**31) if seed is None else seed
    with refusing_to_start():
        code = run(Settings(), DemoOptions(rate, duration, members, chosen))
    raise typer.Exit(code)


@app.command()
def worker() -> None:
    """Run one stream worker (scale out with more, up to the partition count)."""
    from autostamp.wiring import run_worker

    with refusing_to_start():
        run_worker(_settings())


@app.command()
def api() -> None:
    """Serve the publisher API from `AUTOSTAMP_API_PROCESSES` processes sharing its port."""
    from autostamp.api_server import serve

    settings = _settings()
    keyring_or_exit(settings)
    serve(settings)


@app.command()
def dispatcher() -> None:
    """Deliver webhooks from the outbox; several can run side by side."""
    asyncio.run(_dispatch(_settings()))


@app.command()
def setup() -> None:
    """Migrate the database and create the topics (what `up` does before it starts anything)."""
    from autostamp.supervisor import prepare

    settings = _settings()
    prepare(settings, keyring_or_exit(settings))


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION; plaintext webhook secrets are sealed on the way."""
    from autostamp.wiring import sync_engine
    from ledger import migrate

    settings = _settings()
    migrate.upgrade(sync_engine(settings), revision, keyring_or_exit(settings))


@db_app.command("downgrade")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (`base` drops everything)."""
    from autostamp.wiring import sync_engine
    from ledger import migrate

    settings = _settings()
    migrate.downgrade(sync_engine(settings), revision, keyring_or_exit(settings))


programs_app = typer.Typer(help="Loyalty program definitions.", no_args_is_help=True)
app.add_typer(programs_app, name="programs")


programs_app.command("apply")(programs_cli.apply)


@programs_app.command("backtest")
def programs_backtest(
    program_file: backtest_cli.Program,
    transactions: backtest_cli.Transactions = None,
    topic: backtest_cli.Topic = None,
    start: backtest_cli.From = None,
    end: backtest_cli.To = None,
    enrolled_from: backtest_cli.EnrolledFrom = None,
    as_json: backtest_cli.Json = False,
) -> None:
    """What the program would have done over past transactions, per day: stamps, rewards,
    payout cost, members reached, near misses. Writes nothing; needs no database."""
    logs.configure("WARNING")
    backtest_cli.run(program_file, transactions, topic, start, end, enrolled_from, as_json)


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(help="Transactions: .jsonl (one per line) or .csv.")],
    pack: Annotated[int, typer.Option(help="Transactions per message (a bank batch).")] = 1,
) -> None:
    """Put a file of card transactions on the transactions topic; refused lines are listed."""
    from autostamp.wiring import kafka_client_config
    from ledger.transaction_files import read_lines
    from streams.feeds import ingest as produce
    from streams.kafka import KafkaPublisher

    settings = _settings()
    publisher = KafkaPublisher(kafka_client_config(settings))
    total = sum(1 for _ in read_lines(file))
    with typer.progressbar(length=total, label="ingesting") as bar:
        report = produce(
            read_lines(file), publisher, settings.kafka.topics.transactions, pack, bar.update
        )
    typer.echo(f"produced {report.produced} transactions in {report.messages} messages")
    for line, reason in report.refused[:50]:
        typer.echo(f"refused line {line}: {reason}", err=True)
    if report.refused:
        summary = ", ".join(f"{n} x {why}" for why, n in report.reasons().most_common())
        typer.echo(f"refused {len(report.refused)} lines: {summary}", err=True)
        raise typer.Exit(1)


@app.command()
def reconcile(
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Re-derive every counter and reward from the ledger's rows; exit 1 on any difference."""
    from autostamp.commands import run_in_transaction
    from ledger.reconcile import check_in_one_snapshot, record_run

    settings = _settings()
    started = datetime.now(UTC)
    result = run_in_transaction(check_in_one_snapshot, settings)
    finished = datetime.now(UTC)
    run_in_transaction(lambda conn: record_run(conn, result, started, finished), settings)
    if as_json:
        typer.echo(json.dumps(result.as_json(), indent=2))
    else:
        for d in result.differences:
            typer.echo(f"{d.kind}: {d.subject}: expected {d.expected}, found {d.found}")
        typer.echo(result.summary())
    if result.differences:
        raise typer.Exit(1)


@app.command()
def openapi(
    output: Annotated[Path | None, typer.Option(help="Write to this file.")] = None,
) -> None:
    """Print the publisher API's OpenAPI document."""
    from publisher_api import openapi_document

    document = openapi_document()
    text = json.dumps(document, indent=2)
    if output:
        output.write_text(text + "\n")
    else:
        typer.echo(text)


@app.command()
def bench(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(BENCHMARKS)}.")],
    quick: Annotated[bool, typer.Option(help="A short run, for a smoke check.")] = False,
    transactions: Annotated[int | None, typer.Option(help="Pipeline: how many.")] = None,
    pack: Annotated[
        int | None, typer.Option(help="Pipeline: transactions per batch message.")
    ] = None,
) -> None:
    """Run a benchmark; figures are key=value, the headline on the last line."""
    if name not in BENCHMARKS:
        raise typer.BadParameter(f"unknown benchmark {name!r}; choose one of {BENCHMARKS}")
    module = importlib.import_module(f"autostamp.bench.{name}")
    options: dict[str, object] = {"quick": quick}
    if transactions is not None:
        options["transactions"] = transactions
    if pack is not None:
        options["pack"] = pack
    module.run(**options)


def main() -> None:
    """Run the CLI; an unexpected error is logged, redacted, and the exit status is 1."""
    try:
        app()
    except Exception:
        # Not printed by typer: its report would show the error's text (a database URL with
        # its password, say) as is. The log record goes through the redaction rule.
        logs.install_redaction()
        logging.getLogger("autostamp").critical("stopped by an unexpected error", exc_info=True)
        sys.exit(1)
