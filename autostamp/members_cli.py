"""`autostamp members ...`: a member's rights, from the command line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from autostamp.commands import keyring_or_exit, run_in_transaction
from autostamp.settings import Settings
from ledger.erasure import Erasure, erase_member

app = typer.Typer(help="Members' rights.", no_args_is_help=True)


@app.command()
def erase(
    member_id: Annotated[str, typer.Argument(help="The member id the bank feed sends.")],
) -> None:
    """Replace the member id by its pseudonym everywhere; print it and what changed (JSON).

    The same as `POST /publisher.v1/member/erase`; safe to run again."""
    settings = Settings()
    keyring = keyring_or_exit(settings)

    async def work(conn: AsyncConnection) -> Erasure:
        return await erase_member(conn, keyring, member_id, datetime.now(UTC))

    erased = run_in_transaction(work, settings)
    typer.echo(json.dumps({"pseudonym": erased.pseudonym, "changed": erased.counts()}))
