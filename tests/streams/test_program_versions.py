"""Program definitions move forward only: a newer version applies, an older one changes
nothing, and the version the ledger holds with other content is refused with its reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ledger.batch import Source
from ledger.programs import ProgramVersionReused, Verdict, judge_version, program_values
from rules import ProgramDefinition, ProgramStatus
from streams.service import Judgement, StampingService
from tests.streams.conftest import Ledger
from tests.streams.factories import program

MakeService = Callable[..., Any]
ACTIVE = program(threshold=5)
PAUSED = ACTIVE.model_copy(update={"version": 2, "status": ProgramStatus.PAUSED})


async def judge(service: StampingService, *definitions: ProgramDefinition) -> Judgement:
    """Judge definitions as read, in order, from the programs topic."""
    at = [Source("programs", 0, offset) for offset in range(len(definitions))]
    return await service.judge_programs(list(zip(definitions, at, strict=True)), [])


def held(ledger: Ledger) -> tuple[str, int, int]:
    [row] = ledger.rows("SELECT status, version, qualifying_threshold FROM programs")
    return (row.status, row.version, row.qualifying_threshold)


async def test_a_new_version_applies_and_pauses_the_program(
    make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(ACTIVE)
    judged = await judge(service, PAUSED)
    assert judged.ids(Verdict.APPLIED) == ["lp_coffee"]
    assert held(ledger) == ("paused", 2, 5)


async def test_an_older_version_changes_nothing_and_is_counted_not_dead_lettered(
    make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(PAUSED)
    judged = await judge(service, ACTIVE)
    assert judged.ids(Verdict.SUPERSEDED) == ["lp_coffee"]
    assert (judged.ids(Verdict.APPLIED), judged.refused) == ([], [])
    assert held(ledger) == ("paused", 2, 5)
    assert ledger.rows("SELECT id FROM dead_letters") == []


async def test_the_version_held_again_with_the_same_content_changes_nothing(
    make_service: MakeService, ledger: Ledger
) -> None:
    service = await make_service(PAUSED)
    revision = ledger.scalar("SELECT revision FROM programs")
    judged = await judge(service, PAUSED)
    assert judged.ids(Verdict.UNCHANGED) == ["lp_coffee"]
    assert judged.refused == []
    assert ledger.scalar("SELECT revision FROM programs") == revision


async def test_the_version_held_with_other_content_is_dead_lettered_with_its_reason(
    make_service: MakeService, ledger: Ledger
) -> None:
    # A pause made the old way, at the version it paused, then the earlier definition again.
    service = await make_service(ACTIVE.model_copy(update={"status": ProgramStatus.PAUSED}))
    judged = await judge(service, ACTIVE)
    assert held(ledger) == ("paused", 1, 5)
    [refused] = judged.refused
    [letter] = ledger.rows("SELECT key, source_offset, reason FROM dead_letters")
    assert (bytes(letter.key), letter.source_offset, letter.reason) == (
        b"lp_coffee",
        0,
        refused.reason,
    )
    assert "version 1" in letter.reason and "other content" in letter.reason
    assert "version 2 or more" in letter.reason


def test_a_row_written_before_a_rule_had_its_default_says_what_the_definition_says() -> None:
    now = program_values(ACTIVE)
    before = {**now, "rules": {k: v for k, v in now["rules"].items() if k != "stamp_on"}}
    assert judge_version(before, now) is Verdict.UNCHANGED
    assert judge_version(before, {**now, "name": "Renamed", "version": 2}) is Verdict.APPLIED
    with pytest.raises(ProgramVersionReused, match="version 2 or more"):
        judge_version(before, {**now, "name": "Renamed"})
