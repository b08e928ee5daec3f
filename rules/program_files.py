"""Reading one program definition from a YAML or JSON file, with errors that point at the fault."""

import json
from collections.abc import Hashable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from rules.errors import ProgramFileError, describe_validation_error
from rules.programs import ProgramDefinition

ProgramFormat = Literal["yaml", "json"]

_FORMATS: dict[str, ProgramFormat] = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}

# Program files are a page or two; a limit stops a YAML alias bomb from eating the worker.
MAX_PROGRAM_CHARS = 1_000_000

_HINTS = {
    "qualifying_threshold": "must be a whole number of stamps, 1 or more",
    "reward_config": "must be an object whose type is refund or fixed-reward",
    "reward_config.fixed-reward.amount": "must be a positive integer of minor units",
    "reward_config.fixed-reward.currency:missing": (
        "is required: an ISO 4217 code such as GBP, unless the instance has a default currency"
    ),
    "reward_config.refund.max_amount": "must be a positive integer of minor units",
    "status": "must be active, paused or archived",
    "active_from": "must be an RFC 3339 date-time with a UTC offset, such as 2025-01-01T00:00:00Z",
    "active_until": "must be an RFC 3339 date-time with a UTC offset, such as 2025-01-01T00:00:00Z",
    "version": "must be an integer, 1 or more",
    "rules.mccs": "must be a list of quoted 4-digit codes, such as ['5814']",
    "rules.exclude_mccs": "must be a list of quoted 4-digit codes, such as ['5814']",
    "rules.bin_prefixes": "must be a list of quoted digit strings, such as ['412345']",
    "rules.min_amount": "must be a positive integer of minor units",
    "rules.max_amount": "must be a positive integer of minor units",
    "rules.days_of_week": "must be a list of ISO weekdays, 1 (Monday) to 7 (Sunday)",
    "rules.hours_of_day": "must be a list of whole hours, 0 to 23",
    "rules.stamp_on": "must be clearing or auth",
    "rules.daily_cap_per_member": "must be an integer, 1 or more",
    "rules.partial_refunds": "must be void or keep",
}


def load_program(path: str | Path, *, default_currency: str | None = None) -> ProgramDefinition:
    """Read a program from a ``.yaml``, ``.yml`` or ``.json`` file.

    ``default_currency`` is the instance's currency, given to a reward amount that names none.
    """
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ProgramFileError(str(path), ["name the file .yaml, .yml or .json"])
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProgramFileError(str(path), [f"cannot be read: {exc.strerror}"]) from exc
    except UnicodeDecodeError as exc:
        raise ProgramFileError(str(path), [f"is not UTF-8 text: {exc.reason}"]) from exc
    return parse_program(text, source=str(path), fmt=fmt, default_currency=default_currency)


def parse_program(
    text: str, *, source: str, fmt: ProgramFormat, default_currency: str | None = None
) -> ProgramDefinition:
    """Validate one program given as YAML or JSON text; ``source`` names it in errors.

    A fixed reward's amount, or a refund's cap, without a currency takes ``default_currency``
    when it is given, so K42's literal forms (``{"type": "fixed-reward", "amount": 500}``)
    apply as written. The program then carries that currency wherever it goes.
    """
    if len(text) > MAX_PROGRAM_CHARS:
        raise ProgramFileError(source, [f"is larger than {MAX_PROGRAM_CHARS} characters"])
    data = _read_yaml(text, source) if fmt == "yaml" else _read_json(text, source)
    if not isinstance(data, dict):
        raise ProgramFileError(source, ["must hold one program: a mapping with id, name, rules..."])
    if default_currency is not None:
        data = _with_default_currency(data, default_currency)
    try:
        return ProgramDefinition.model_validate(data)
    except ValidationError as exc:
        raise ProgramFileError(source, describe_validation_error(exc, _HINTS)) from exc


def _with_default_currency(data: dict[str, Any], currency: str) -> dict[str, Any]:
    reward = data.get("reward_config")
    if not isinstance(reward, dict) or "currency" in reward:
        return data
    amounted = reward.get("type") == "fixed-reward" or "max_amount" in reward
    return {**data, "reward_config": {**reward, "currency": currency}} if amounted else data


def _read_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise ProgramFileError(source, [f"{where}: JSON syntax error: {exc.msg}"]) from exc


def _read_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ProgramFileError(source, [f"{where}YAML syntax error: {problem}"]) from exc
    except yaml.YAMLError as exc:
        raise ProgramFileError(source, [f"YAML syntax error: {exc}"]) from exc


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that also refuses a key given twice, where plain YAML keeps the last silently."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                break  # SafeLoader refuses unhashable keys with its own message
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)
