"""Builders of programs, transactions and messages for the stream tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Engine, insert, text

from ledger.catalog import KEEP_VERSION
from ledger.programs import program_values
from ledger.schema import Program
from rules import ProgramDefinition
from rules.samples import sample_program
from streams.decoding import RawMessage
from streams.kafka import ProducerRecord
from streams.program_signing import ProgramKeys, signed_records
from tests.streams.worker import PROGRAMS_KEY

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning
_offsets = itertools.count()


def program(
    id: str = "lp_coffee",
    threshold: int = 3,
    reward: dict[str, Any] | None = None,
    **rules: Any,
) -> ProgramDefinition:
    rules = {"merchant_ids": ["mer_bean"], **rules}
    return ProgramDefinition.model_validate(
        sample_program(id, threshold=threshold, reward=reward, rules=rules)
    )


def signed(
    topic: str, *programs: ProgramDefinition, key: str = PROGRAMS_KEY
) -> list[ProducerRecord]:
    """Definitions as `autostamp programs apply` publishes them, signed with `key`."""
    return signed_records(topic, programs, ProgramKeys((key,)))


def tx(
    id: str,
    member: str = "m1",
    amount: int = 450,
    type: str = "clearing",
    at: datetime | None = None,
    merchant: str = "mer_bean",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": id,
        "type": type,
        "member_id": member,
        "amount": amount,
        "currency": "GBP",
        "merchant": {"id": merchant, "name": "Bean There", "mcc": "5814"},
        "card": {"id": "card_1", "scheme": "visa"},
        "occurred_at": (at or T0 + timedelta(hours=1)).isoformat(),
        **extra,
    }


def undo(id: str, original: str, member: str = "m1", kind: str = "refund") -> dict[str, Any]:
    return tx(id, member=member, type=kind, original_id=original)


def message(body: dict[str, Any] | list[Any] | bytes, partition: int = 0) -> RawMessage:
    value = body if isinstance(body, bytes) else orjson.dumps(body)
    return RawMessage("transactions", partition, next(_offsets), b"m1", value)


def messages(*bodies: dict[str, Any] | list[Any] | bytes) -> list[RawMessage]:
    return [message(body) for body in bodies]


def save_programs(engine: Engine, *programs: ProgramDefinition) -> None:
    """Programs in the ledger as applying them leaves them, their versions kept (where the
    schema has them: a test may seed a ledger at an older migration)."""
    with engine.begin() as conn:
        versions = conn.execute(text("SELECT to_regclass('program_versions')")).scalar()
        for p in programs:
            conn.execute(insert(Program).values(**program_values(p)))
            if versions is not None:
                conn.execute(KEEP_VERSION, {"id": p.id})


def enroll(
    engine: Engine, member: str = "m1", program_id: str = "lp_coffee", at: datetime = T0
) -> str:
    collection_id = f"sc_{program_id}_{member}"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO stamp_collections (id, program_id, member_id, created_at) "
                "VALUES (:id, :program, :member, :at)"
            ),
            {"id": collection_id, "program": program_id, "member": member, "at": at},
        )
    return collection_id
