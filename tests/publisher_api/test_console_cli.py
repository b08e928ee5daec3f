"""`autostamp console sign-in-link`: a one-time console sign-in link for an admin key."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from autostamp.cli import app
from ledger import keys
from ledger.console_sessions import redeem_ticket, session_key
from ledger.database import transaction
from ledger.errors import AuthError
from ledger.schema import ApiKey

LINK = re.compile(r"http://127\.0\.0\.1:8123/console/ticket/(act_[\w-]+)")


@pytest.fixture
def cli(database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AUTOSTAMP_API_PORT", "8123")
    return CliRunner()


def _redeem(database_url: str, ticket: str) -> str | None:
    """The id of the key whose session the ticket opens, or None when it opens none."""

    async def redeem() -> str | None:
        engine = create_async_engine(database_url)
        try:
            async with transaction(engine) as conn:
                now = datetime.now(UTC)
                try:
                    session = await redeem_ticket(conn, ticket, now)
                except AuthError:
                    return None
                key = await session_key(conn, session, now)
                return None if key is None else key.id
        finally:
            await engine.dispose()

    return asyncio.run(redeem())


def _create_key(database_url: str, name: str, scope: keys.Scope) -> str:
    async def create() -> str:
        engine = create_async_engine(database_url)
        try:
            async with transaction(engine) as conn:
                return (await keys.create_key(conn, name, scope)).record.id
        finally:
            await engine.dispose()

    return asyncio.run(create())


def test_without_a_key_it_creates_an_admin_key_named_console_and_links_it(
    cli: CliRunner, engine: Engine, database_url: str
) -> None:
    result = cli.invoke(app, ["console", "sign-in-link"])

    assert result.exit_code == 0, result.output
    link = LINK.fullmatch(result.stdout.strip())
    assert link is not None, result.stdout
    with engine.connect() as conn:
        key_id, scope = conn.execute(
            select(ApiKey.id, ApiKey.scope).where(ApiKey.name == "console")
        ).one()
    assert scope == "admin" and key_id in result.stderr
    assert _redeem(database_url, link.group(1)) == key_id
    assert _redeem(database_url, link.group(1)) is None


def test_with_a_key_id_it_links_that_admin_key_afresh_each_time(
    cli: CliRunner, engine: Engine, database_url: str
) -> None:
    key_id = _create_key(database_url, "operator", keys.Scope.ADMIN)

    first = cli.invoke(app, ["console", "sign-in-link", "--key-id", key_id])
    second = cli.invoke(app, ["console", "sign-in-link", "--key-id", key_id])

    tickets = [LINK.fullmatch(r.stdout.strip()) for r in (first, second)]
    assert all(tickets), (first.output, second.output)
    assert tickets[0] != tickets[1]
    assert [_redeem(database_url, t.group(1)) for t in tickets if t] == [key_id, key_id]
    with engine.connect() as conn:
        assert conn.scalar(select(ApiKey.name).where(ApiKey.name == "console")) is None


def test_a_key_that_is_not_an_admin_key_gets_no_link(cli: CliRunner, database_url: str) -> None:
    read_key = _create_key(database_url, "reader", keys.Scope.READ)

    not_admin = cli.invoke(app, ["console", "sign-in-link", "--key-id", read_key])
    unknown = cli.invoke(app, ["console", "sign-in-link", "--key-id", "key_NOPE"])

    assert not_admin.exit_code == 1 and "'admin'" in not_admin.stderr
    assert unknown.exit_code == 1 and "key_NOPE" in unknown.stderr
    assert not_admin.stdout == unknown.stdout == ""


def test_a_link_printed_before_its_key_was_rotated_no_longer_signs_in(
    cli: CliRunner, database_url: str
) -> None:
    key_id = _create_key(database_url, "operator", keys.Scope.ADMIN)
    linked = cli.invoke(app, ["console", "sign-in-link", "--key-id", key_id])
    link = LINK.fullmatch(linked.stdout.strip())
    assert link is not None, linked.output

    rotated = cli.invoke(app, ["keys", "rotate", key_id])

    assert rotated.exit_code == 0, rotated.output
    assert _redeem(database_url, link.group(1)) is None
