"""Decisions that say why a transaction did or did not qualify for a program."""

from collections.abc import Iterable
from dataclasses import dataclass

from rules.conditions import Condition, compile_conditions
from rules.programs import ProgramDefinition
from rules.transactions import CardTransaction


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a program accepted a transaction and, if not, the first condition that failed."""

    program_id: str
    matched: bool
    condition: str | None = None
    reason: str | None = None

    def __str__(self) -> str:
        if self.matched:
            return f"{self.program_id}: matched"
        return f"{self.program_id}: no match, {self.condition}: {self.reason}"


def decide(program_id: str, conditions: Iterable[Condition], tx: CardTransaction) -> Decision:
    """Check the conditions in order and report the first that fails."""
    for condition in conditions:
        if not condition.holds(tx):
            miss = condition.miss(tx)
            return Decision(program_id, matched=False, condition=miss.condition, reason=miss.reason)
    return Decision(program_id, matched=True)


def explain_program(program: ProgramDefinition, tx: CardTransaction) -> Decision:
    """Decide one program against one transaction, without any index: the reference answer."""
    return decide(program.id, compile_conditions(program), tx)


def qualifies(program: ProgramDefinition, tx: CardTransaction) -> bool:
    """Whether the transaction earns the program a stamp, by checking every condition."""
    return explain_program(program, tx).matched


def describe(decisions: Iterable[Decision], tx: CardTransaction) -> list[str]:
    """Lines for a person: one per candidate program, or why there was no candidate at all."""
    lines = [str(decision) for decision in decisions]
    if lines:
        return lines
    merchant = tx.merchant
    brand = merchant.brand_id or "none"
    return [
        f"no program was a candidate: none names merchant {merchant.id}, brand {brand} "
        f"or MCC {merchant.mcc}, and none leaves all three open"
    ]
