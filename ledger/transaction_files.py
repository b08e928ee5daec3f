"""Files of card transactions, as banks export them: JSON lines, or flat CSV rows."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

CSV_INTEGERS = frozenset({"amount"})


def _csv_row(row: dict[str, str]) -> bytes:
    """A flat CSV row (`merchant.id`, `card.scheme`, ...) as the JSON of a transaction."""
    nested: dict[str, Any] = {}
    for column, cell in row.items():
        if cell is None or cell == "":
            continue
        value: Any = int(cell) if column in CSV_INTEGERS and cell.lstrip("-").isdigit() else cell
        target = nested
        *parents, leaf = column.strip().split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return orjson.dumps(nested)


def read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, JSON bytes) of each transaction in a .jsonl / .json-lines or .csv file."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=2):
                yield number, _csv_row(row)
        return
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line.strip()


def numbered_lines(path: Path) -> Iterator[tuple[str, bytes]]:
    """`read_lines` with each place named as a refusal names it: `line N`."""
    for number, raw in read_lines(path):
        yield f"line {number}", raw
