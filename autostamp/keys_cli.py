"""`autostamp keys ...`: create, list, revoke and rotate publisher API keys.

A new or rotated key's token is the only thing printed on stdout, so scripts can capture it;
everything else goes to stderr. The token is shown once and never stored.

Keys are for servers and operators. A member's mobile app gets a member token from the
publisher's backend (`POST /publisher.v1/member-token/create`), never a key: a read key
reads every member's data.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from autostamp.commands import keyring_or_exit, run_in_transaction
from autostamp.settings import Settings
from ledger import keys

app = typer.Typer(help="Publisher API keys.", no_args_is_help=True)
_ROW = "{:<28} {:<12} {:<6} {:<7} {:<20} {}"


def _issued(issued: keys.IssuedKey, what: str) -> None:
    key = issued.record
    typer.echo(f"{what} key {key.id} ({key.scope}) named {key.name!r}", err=True)
    typer.echo("the token below is shown once: store it now", err=True)
    typer.echo(issued.token)
    if issued.signing_secret is not None:
        typer.echo("the request-signing secret below (second line) is shown once too", err=True)
        typer.echo(issued.signing_secret)


@app.command()
def create(
    name: Annotated[str, typer.Option(help="Who or what uses the key, e.g. 'wallet backend'.")],
    scope: Annotated[
        keys.Scope,
        typer.Option(
            help="read: list and get every member's data (servers only); full: also enroll "
            "and mint member tokens; admin: also webhooks and operator calls; enroll: only "
            "enroll (browser-safe, with --origin); ingest: only "
            "POST /ingest.v1/transactions (a bank's feed); support: read, adjust stamps and "
            "read the operations feed. A mobile app gets a member token from its backend "
            "(POST /publisher.v1/member-token/create), not a key."
        ),
    ] = keys.Scope.READ,
    expires_in_days: Annotated[
        int | None, typer.Option(min=1, help="Refuse the key after this many days.")
    ] = None,
    origin: Annotated[
        list[str] | None,
        typer.Option(help="Enroll keys: a browser origin the key may be used from (repeat)."),
    ] = None,
    signed: Annotated[
        bool,
        typer.Option(
            help="Ingest keys: every request must be signed with a secret printed once "
            "after the token (X-Timestamp, X-Signature)."
        ),
    ] = False,
) -> None:
    """Create a key and print its token (once)."""
    expires_at = None
    if expires_in_days is not None:
        expires_at = datetime.now(UTC) + timedelta(days=expires_in_days)
    if scope is keys.Scope.MEMBER:
        raise typer.BadParameter(
            "member tokens are minted for one member by the publisher's backend: "
            "POST /publisher.v1/member-token/create with a full key",
            param_hint="--scope",
        )
    origins = origin or []
    try:
        keys.checked_origins(scope, origins)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--origin") from exc
    if signed and scope is not keys.Scope.INGEST:
        raise typer.BadParameter("only an ingest key signs its requests", param_hint="--signed")
    keyring = keyring_or_exit(Settings()) if signed else None
    issued = run_in_transaction(
        lambda conn: keys.create_key(
            conn, name, scope, expires_at, allowed_origins=origins, signing_keyring=keyring
        )
    )
    _issued(issued, "created")


@app.command("list")
def list_keys() -> None:
    """List every key, revoked ones included; never their secrets. Member tokens are not
    listed: they expire within a day."""
    now = datetime.now(UTC)
    typer.echo(_ROW.format("ID", "PREFIX", "SCOPE", "STATUS", "LAST USED", "NAME"))
    for key in run_in_transaction(keys.list_keys):
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
    """Revoke a key; every API process refuses it within a second."""
    key = run_in_transaction(lambda conn: keys.revoke_key(conn, key_id, datetime.now(UTC)))
    typer.echo(f"revoked key {key.id} named {key.name!r}", err=True)


@app.command()
def rotate(key_id: Annotated[str, typer.Argument(help="The key's id, from `keys list`.")]) -> None:
    """Give a live key a new token; the old one is refused within a second."""
    _issued(run_in_transaction(lambda conn: keys.rotate_key(conn, key_id)), "rotated")
