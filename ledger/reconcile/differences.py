"""What a check of `reconcile` reports, and the program versions the checks judge by."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Difference:
    """One thing the rows say should be otherwise."""

    kind: str
    subject: str
    expected: str
    found: str


VERSIONS = """
versions AS (
    -- Every version of every program the ledger knows: those kept as applied (migration
    -- 0019 on), and the current row, which a program written by hand has only.
    SELECT program_id, version, definition->'reward_config' AS reward_config,
           definition->'rules' AS rules
    FROM program_versions
    UNION
    SELECT id, version, reward_config, rules FROM programs
)"""
"""A common table expression, `versions (program_id, version, reward_config, rules)`; a
version may show twice when its row was rewritten without a new version number."""


def of_the_purchase(undo: str, stamp: str, member: str) -> str:
    """SQL: the undo aliased `undo` names the purchase of the stamp aliased `stamp`, of the
    member in column `member`: by its purchase id or the id of a remembered event of it."""
    events = f"SELECT e.id FROM purchase_events e WHERE e.member_id = {member}"  # noqa: S608
    events += f" AND e.purchase_id = {stamp}.purchase_id"
    return f"({undo}.original_id = {stamp}.purchase_id OR {undo}.original_id IN ({events}))"
