"""A complete program definition to start from, for the benchmarks, the tests and the docs."""

from collections.abc import Mapping
from typing import Any

SAMPLE_DISPLAY: dict[str, Any] = {
    "title": "Buy 5, get 1 free",
    "image": "https://cdn.example.com/card.png",
    "summary": "Collect 5 stamps",
    "description": "Buy any coffee to collect a stamp.",
    "terms": "Participating shops only.",
}


def sample_program(
    id: str = "lp_sample",
    *,
    threshold: int = 5,
    reward: Mapping[str, Any] | None = None,
    rules: Mapping[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """The JSON of a valid definition; `fields` set the others (name, status, version, ...)."""
    return {
        "id": id,
        "name": f"Program {id}",
        "qualifying_threshold": threshold,
        "reward_config": dict(reward or {"type": "refund"}),
        "display_content": dict(SAMPLE_DISPLAY),
        "rules": dict(rules or {}),
        **fields,
    }
