"""No statement runs without end: every engine and pool autostamp builds carries a timeout."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from autostamp.settings import ApiSettings, DatabaseSettings, Settings
from autostamp.wiring import api_read_options, async_engine, libpq_url
from ledger.statements import PooledStatements

pytestmark = pytest.mark.services


async def test_a_statement_past_the_database_timeout_is_cancelled(database_url: str) -> None:
    database = DatabaseSettings.model_validate(
        {"DATABASE_URL": database_url, "statement_timeout_s": 0.2}
    )
    engine = async_engine(Settings(database=database))
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT pg_sleep(0.05)"))).all()
            with pytest.raises(OperationalError, match="statement timeout"):
                await conn.execute(text("SELECT pg_sleep(2)"))
    finally:
        await engine.dispose()


async def test_an_api_read_past_its_timeout_is_cancelled(database_url: str) -> None:
    api = ApiSettings(statement_timeout_s=0.2)
    pool = PooledStatements(
        libpq_url(database_url), 1, options=api_read_options(api.statement_timeout_s)
    )
    try:
        assert await pool.rows(select(func.pg_sleep(0.05)))
        [setting] = await pool.rows(select(func.current_setting("jit")))
        assert list(setting.values()) == ["off"]
        with pytest.raises(Exception) as cancelled:
            await pool.rows(select(func.pg_sleep(2)))
        assert isinstance(cancelled.value.__cause__, psycopg.errors.QueryCanceled)
    finally:
        await pool.close()


def test_the_default_timeouts_are_set() -> None:
    assert Settings().database.statement_timeout_s == 60
    assert Settings().api.statement_timeout_s == 5
