"""Which loyalty programs a card transaction qualifies for: models, matcher and explanations."""

from rules.conditions import Miss
from rules.currencies import ISO_4217_CODES, is_currency
from rules.errors import InvalidTransaction, ProgramFileError, RulesError
from rules.explain import Decision, describe, explain_program, qualifies
from rules.matcher import Matcher
from rules.program_files import load_program, parse_program
from rules.programs import (
    DisplayContent,
    FixedReward,
    ProgramDefinition,
    ProgramStatus,
    RefundReward,
    RewardConfig,
    RewardDisplay,
)
from rules.qualifying import PartialRefunds, QualifyingRules, StampOn
from rules.transactions import (
    STAMPING_TYPES,
    UNDOING_TYPES,
    Card,
    CardTransaction,
    Merchant,
    TransactionType,
    parse_batch,
    parse_transaction,
    validate_transaction,
)

__all__ = [
    "ISO_4217_CODES",
    "STAMPING_TYPES",
    "UNDOING_TYPES",
    "Card",
    "CardTransaction",
    "Decision",
    "DisplayContent",
    "FixedReward",
    "InvalidTransaction",
    "Matcher",
    "Merchant",
    "Miss",
    "PartialRefunds",
    "ProgramDefinition",
    "ProgramFileError",
    "ProgramStatus",
    "QualifyingRules",
    "RefundReward",
    "RewardConfig",
    "RewardDisplay",
    "RulesError",
    "StampOn",
    "TransactionType",
    "describe",
    "explain_program",
    "is_currency",
    "load_program",
    "parse_batch",
    "parse_program",
    "parse_transaction",
    "qualifies",
    "validate_transaction",
]
