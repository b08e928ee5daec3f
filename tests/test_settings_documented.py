"""docs/settings.md names every setting a process reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic_settings import BaseSettings

from autostamp.settings import Settings

DOC = Path(__file__).resolve().parents[1] / "docs" / "settings.md"


def variables(model: type[BaseSettings]) -> Iterator[str]:
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseSettings):
            yield from variables(field.annotation)
        else:
            prefix = model.model_config.get("env_prefix") or ""
            yield f"{prefix}{name}".upper()


def test_every_setting_is_documented() -> None:
    text = DOC.read_text()
    missing = [v for v in variables(Settings) if f"`{v}`" not in text and f" {v}`" not in text]
    assert missing == []
