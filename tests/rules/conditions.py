"""The vocabulary of the condition tables: one case per row, named for what it shows."""

from collections.abc import Callable
from typing import Any

import pytest

from rules import CardTransaction, ProgramDefinition

TxBuilder = Callable[..., CardTransaction]
ProgramBuilder = Callable[..., ProgramDefinition]

GBP = {"currencies": ["GBP"]}
LONDON = {"timezone": "Europe/London"}


def case(
    name: str,
    rules: dict[str, Any],
    failing: str | None,
    tx: dict[str, Any] | None = None,
    program: dict[str, Any] | None = None,
) -> Any:
    return pytest.param(rules, tx or {}, program or {}, failing, id=name)


def at(instant: str) -> dict[str, Any]:
    return {"occurred_at": instant}
