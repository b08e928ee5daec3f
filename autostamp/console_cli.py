"""`autostamp console ...`: one-time sign-in links to the operator console.

A link carries a ticket, never the admin key: it opens one console session, within
`ledger.console_sessions.TICKET_LIFETIME`. The link is the only thing printed on stdout, so
scripts can capture it; everything else goes to stderr.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from autostamp.commands import run_in_transaction
from autostamp.settings import ApiSettings, Settings
from autostamp.wiring import api_url
from ledger import keys
from ledger.console_sessions import TICKET_LIFETIME, issue_ticket
from ledger.errors import AuthError, ScopeError

app = typer.Typer(help="The operator console.", no_args_is_help=True)

CONSOLE_KEY_NAME = "console"


def sign_in_url(api: ApiSettings, ticket: str) -> str:
    """The console page that redeems `ticket` and opens a session."""
    return f"{api_url(api)}/console/ticket/{ticket}"


async def _new_key_and_ticket(conn: AsyncConnection) -> tuple[str, str]:
    issued = await keys.create_key(conn, CONSOLE_KEY_NAME, keys.Scope.ADMIN)
    return issued.record.id, await issue_ticket(conn, issued.record.id, datetime.now(UTC))


@app.command("sign-in-link")
def sign_in_link(
    key_id: Annotated[
        str | None,
        typer.Option(
            help="An admin key's id (`autostamp keys list`). Without it, a new admin key "
            f"named {CONSOLE_KEY_NAME!r} is created for the link."
        ),
    ] = None,
) -> None:
    """Print a one-time console sign-in link for an admin key."""
    settings = Settings()
    try:
        if key_id is None:
            key_id, ticket = run_in_transaction(_new_key_and_ticket, settings)
            typer.echo(f"created admin key {key_id} named {CONSOLE_KEY_NAME!r}", err=True)
        else:
            chosen = key_id
            ticket = run_in_transaction(
                lambda conn: issue_ticket(conn, chosen, datetime.now(UTC)), settings
            )
    except (AuthError, ScopeError) as exc:
        typer.echo(f"error: key {key_id}: {exc}", err=True)
        raise typer.Exit(1) from exc
    minutes = int(TICKET_LIFETIME.total_seconds() // 60)
    typer.echo(f"one sign-in, within {minutes} minutes, as key {key_id}:", err=True)
    typer.echo(sign_in_url(settings.api, ticket))
