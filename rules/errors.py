"""Errors raised by the rules package, and one-line descriptions of pydantic validation errors.

    RulesError
    ├── InvalidTransaction   a card transaction message that cannot be used (goes to dead-letter)
    └── ProgramFileError     a program definition (YAML or JSON) that cannot be applied

A program built in code with ``ProgramDefinition.model_validate`` raises pydantic's own
``ValidationError``; ``describe_validation_error`` turns one into readable lines. ``FieldProblem``
is not part of the tree: model validators raise it inside pydantic to blame a single field.
"""

from collections.abc import Mapping

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from rules.fields import PATTERNS, shown


class RulesError(Exception):
    """Base of every error the rules package raises on purpose."""


class InvalidTransaction(RulesError):
    """A card transaction message was refused; ``reason`` names the field and what is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ProgramFileError(RulesError):
    """A program definition was refused; ``problems`` lists each field (or line) and its fault."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


class FieldProblem(ValueError):
    """Raised inside a model validator to blame one field of that model, not the whole model."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field


def describe_validation_error(exc: ValidationError, hints: Mapping[str, str]) -> list[str]:
    """One ``field: problem`` line per error; ``hints`` rephrase pydantic's wording per field."""
    return [_describe(error, hints) for error in exc.errors(include_url=False)]


def _describe(error: ErrorDetails, hints: Mapping[str, str]) -> str:
    loc = error["loc"]
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, FieldProblem):
        loc = (*loc, cause.field)
    where = location(loc)
    kind = error["type"]
    if kind == "missing":
        problem = hints.get(_hint_key(loc) + ":missing") or "is required"
    elif kind == "extra_forbidden":
        problem = "is not a known field (check the spelling)"
    elif kind == "value_error" and cause is not None:
        problem = str(cause)
    elif kind in _TEXT_SHAPE:
        problem = _TEXT_SHAPE[kind](error)
    else:
        problem = hints.get(_hint_key(loc)) or _GENERIC.get(kind) or _lower(error["msg"])
    return f"{where}: {problem}" if where else problem


def _pattern_mismatch(error: ErrorDetails) -> str:
    phrase = PATTERNS.get(error.get("ctx", {}).get("pattern", ""))
    if phrase == "":
        return "must not contain NUL characters"
    if not phrase:
        return _lower(error["msg"])
    if is_personal(error["loc"]):
        return f"is not {phrase}"
    return f"{shown(error['input'])} is not {phrase}"


PERSONAL_FIELDS = frozenset({"member_id", "card", "merchant"})
"""A transaction's fields about a person: a refusal names them, never quotes their values."""


def is_personal(loc: tuple[int | str, ...]) -> bool:
    """Whether the field at `loc` (or the object holding it) is one of `PERSONAL_FIELDS`."""
    return any(part in PERSONAL_FIELDS for part in loc)


_TEXT_SHAPE = {
    "string_too_short": lambda error: "must not be empty",
    "string_too_long": lambda error: (
        f"must be at most {error.get('ctx', {}).get('max_length')} characters"
    ),
    "string_pattern_mismatch": _pattern_mismatch,
}


def _lower(message: str) -> str:
    return message[:1].lower() + message[1:]


_GENERIC = {
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "bool_type": "must be true or false",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
}


def location(loc: tuple[int | str, ...]) -> str:
    """``('rules', 'mccs', 0)`` becomes ``rules.mccs[0]``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _hint_key(loc: tuple[int | str, ...]) -> str:
    # Hints are keyed by field path without list positions: one hint covers every item.
    return ".".join(part for part in loc if isinstance(part, str))
