"""What the operator commands share: one unit of work in one transaction, refusals as exit 1."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from autostamp.settings import Settings
from autostamp.wiring import SettingRequired, async_engine, secret_keyring
from ledger.database import transaction
from ledger.errors import AdjustmentRefused, NotFound, SecretKeyError, StorageError, UnsafeUrl
from ledger.idempotency import IdempotencyKeyReused
from ledger.sealing import Keyring

T = TypeVar("T")

_NO_DATABASE = "set DATABASE_URL, or start `autostamp up` for the embedded database"


def run_in_transaction(
    work: Callable[[AsyncConnection], Awaitable[T]], settings: Settings | None = None
) -> T:
    """Run `work` in one transaction on the configured database, and return what it returns.

    A database that does not answer, or a request the ledger refuses, exits 1 with the reason.
    """
    engine = async_engine(settings or Settings())

    async def main() -> T:
        try:
            async with transaction(engine) as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except StorageError as exc:
        typer.echo(f"error: {exc} ({_NO_DATABASE})", err=True)
        raise typer.Exit(1) from exc
    except (
        NotFound,
        UnsafeUrl,
        SecretKeyError,
        AdjustmentRefused,
        IdempotencyKeyReused,
        ValueError,
    ) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


EX_CONFIG = 78  # an operator must set something before this can run


@contextmanager
def refusing_to_start() -> Iterator[None]:
    """A missing or unusable setting, or secret key, ends the command with exit 78 (EX_CONFIG)
    and what to set, not a traceback."""
    try:
        yield
    except (SettingRequired, SecretKeyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EX_CONFIG) from exc


def keyring_or_exit(settings: Settings) -> Keyring:
    """The keys that seal webhook secrets; without them, exit 78 (EX_CONFIG) naming the setting."""
    with refusing_to_start():
        return secret_keyring(settings)
