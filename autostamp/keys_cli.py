"""`autostamp keys ...`: create, list, revoke and rotate publisher API keys.

A new or rotated key's token is the only thing printed on stdout, so scripts can capture it;
everything else goes to stderr. The token is shown once and never stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from autostamp.settings import Settings
from autostamp.wiring import async_engine
from ledger import keys
from ledger.database import transaction
from ledger.errors import NotFound, StorageError

T = TypeVar("T")

app = typer.Typer(help="Publisher API keys.", no_args_is_help=True)
_ROW = "{:<28} {:<12} {:<5} {:<7} {:<20} {}"


def _run(work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run one unit of work in one transaction; a refused request exits 1 with the reason."""
    engine = async_engine(Settings())

    async def main() -> T:
        try:
            async with transaction(engine) as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except StorageError as exc:
        hint = "set DATABASE_URL, or start `autostamp up` for the embedded database"
        typer.echo(f"error: {exc} ({hint})", err=True)
        raise typer.Exit(1) from exc
    except (NotFound, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def _issued(issued: keys.IssuedKey, what: str) -> None:
    key = issued.record
    typer.echo(f"{what} key {key.id} ({key.scope}) named {key.name!r}", err=True)
    typer.echo("the token below is shown once: store it now", err=True)
    typer.echo(issued.token)


@app.command()
def create(
    name: Annotated[str, typer.Option(help="Who or what uses the key, e.g. 'mobile app'.")],
    scope: Annotated[
        keys.Scope, typer.Option(help="read: list and get; full: also enroll; admin: operator.")
    ] = keys.Scope.READ,
    expires_in_days: Annotated[
        int | None, typer.Option(min=1, help="Refuse the key after this many days.")
    ] = None,
) -> None:
    """Create a key and print its token (once)."""
    expires_at = None
    if expires_in_days is not None:
        expires_at = datetime.now(UTC) + timedelta(days=expires_in_days)
    _issued(_run(lambda conn: keys.create_key(conn, name, scope, expires_at)), "created")


@app.command("list")
def list_keys() -> None:
    """List every key, revoked ones included; never their secrets."""
    now = datetime.now(UTC)
    typer.echo(_ROW.format("ID", "PREFIX", "SCOPE", "STATUS", "LAST USED", "NAME"))
    for key in _run(keys.list_keys):
        used = key.last_used_at.strftime("%Y-%m-%dT%H:%M:%SZ") if key.last_used_at else "never"
        typer.echo(_ROW.format(key.id, key.prefix, key.scope, _status(key, now), used, key.name))


def _status(key: keys.ApiKeyRecord, now: datetime) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "live"


@app.command()
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id, from `keys list`.")]) -> None:
    """Revoke a key; its next request is refused."""
    key = _run(lambda conn: keys.revoke_key(conn, key_id, datetime.now(UTC)))
    typer.echo(f"revoked key {key.id} named {key.name!r}", err=True)


@app.command()
def rotate(key_id: Annotated[str, typer.Argument(help="The key's id, from `keys list`.")]) -> None:
    """Give a live key a new token; the old token stops working at once."""
    _issued(_run(lambda conn: keys.rotate_key(conn, key_id)), "rotated")
