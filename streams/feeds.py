"""Feeds from outside Kafka: a file of transactions (JSON lines or CSV) put on the topic."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from rules import CardTransaction, InvalidTransaction, parse_transaction
from streams.kafka import KafkaPublisher, ProducerRecord

CSV_INTEGERS = frozenset({"amount"})


@dataclass
class IngestReport:
    """What a file gave: how many lines went on the topic, and each refusal with its line."""

    produced: int = 0
    messages: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)

    def reasons(self) -> Counter[str]:
        return Counter(reason.split(":", 1)[0] for _, reason in self.refused)


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


def _records(
    topic: str, valid: Iterable[CardTransaction], pack: int
) -> Iterator[tuple[ProducerRecord, int]]:
    """One message per transaction, or per `pack` transactions of one member key."""
    if pack <= 1:
        for tx in valid:
            yield ProducerRecord(topic, tx.model_dump_json().encode(), tx.member_id.encode()), 1
        return
    buffers: dict[str, list[CardTransaction]] = {}
    for tx in valid:
        group = buffers.setdefault(tx.member_id, [])
        group.append(tx)
        if len(group) >= pack:
            yield _packed(topic, buffers.pop(tx.member_id)), pack
    for group in buffers.values():
        yield _packed(topic, group), len(group)


def _packed(topic: str, group: list[CardTransaction]) -> ProducerRecord:
    body = b"[" + b",".join(tx.model_dump_json().encode() for tx in group) + b"]"
    return ProducerRecord(topic, body, group[0].member_id.encode())


def ingest(
    lines: Iterable[tuple[int, bytes]],
    publisher: KafkaPublisher,
    topic: str,
    pack: int = 1,
    progress: Callable[[int], None] = lambda n: None,
) -> IngestReport:
    """Validate each line and produce the valid ones, keyed by member; refuse the rest."""
    report = IngestReport()

    def valid() -> Iterator[CardTransaction]:
        for number, raw in lines:
            progress(1)
            try:
                yield parse_transaction(raw)
            except InvalidTransaction as exc:
                report.refused.append((number, str(exc)))

    chunk: list[ProducerRecord] = []
    for record, count in _records(topic, valid(), pack):
        chunk.append(record)
        report.produced += count
        if len(chunk) >= 5000:
            report.messages += publisher.publish(chunk)
            chunk = []
    report.messages += publisher.publish(chunk)
    return report
