"""`autostamp members erase`: the operator's way to erase a member, as the API does."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from autostamp.cli import app
from ledger.erasure import pseudonym
from ledger.programs import program_values
from ledger.schema import Program
from rules import ProgramDefinition
from rules.samples import sample_program
from tests.webhooks.support import TEST_KEY, TEST_KEYRING


@pytest.fixture
def cli(database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AUTOSTAMP_SECRET_KEY", TEST_KEY)
    return CliRunner()


def test_erase_prints_the_pseudonym_and_what_changed_and_can_run_again(
    cli: CliRunner, engine: Engine
) -> None:
    definition = ProgramDefinition.model_validate(sample_program("lp_coffee"))
    with engine.begin() as conn:
        conn.execute(Program.__table__.insert().values(**program_values(definition)))
        conn.execute(
            text(
                "INSERT INTO stamp_collections (id, program_id, member_id) "
                "VALUES ('sc_1', 'lp_coffee', 'm-cli-1')"
            )
        )

    first = cli.invoke(app, ["members", "erase", "m-cli-1"])
    again = cli.invoke(app, ["members", "erase", "m-cli-1"])

    assert first.exit_code == again.exit_code == 0, first.output
    erased, repeated = json.loads(first.stdout), json.loads(again.stdout)
    assert erased["pseudonym"] == repeated["pseudonym"] == pseudonym(TEST_KEYRING, "m-cli-1")
    assert erased["changed"]["collections"] == 1
    assert set(repeated["changed"].values()) == {0}
    with engine.connect() as conn:
        member = conn.execute(text("SELECT member_id FROM stamp_collections")).scalar_one()
    assert member == erased["pseudonym"]
