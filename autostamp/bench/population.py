"""What the pipeline benchmark feeds: programs, enrolled members, and their card transactions.

1,000 programs naming one to three of 3,000 merchants; members enrolled in five programs
each; transactions mostly from a few busy members, a chosen share of them at a merchant of
one of the member's programs (the rest match nothing).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine, text

from rules.samples import sample_program
from streams.kafka import ProducerRecord

PROGRAMS = 1_000
MEMBERS = 20_000
ENROLLMENTS_PER_MEMBER = 5
MERCHANTS = 3_000
PARTITIONS = 4


def _program(n: int, rng: random.Random) -> dict[str, object]:
    reward = (
        {"type": "refund"}
        if n % 3 == 0
        else {"type": "fixed-reward", "amount": 500, "currency": "GBP"}
    )
    merchants = sorted({f"mer_{rng.randrange(MERCHANTS)}" for _ in range(rng.randint(1, 3))})
    rules = {"merchant_ids": merchants}
    return sample_program(f"lp_{n:05d}", threshold=rng.randint(5, 10), reward=reward, rules=rules)


@dataclass
class Population:
    """The programs seeded, and the merchants at which each enrolled member collects."""

    programs: list[dict[str, Any]]
    merchants: dict[str, list[str]] = field(default_factory=dict)

    @property
    def collections(self) -> int:
        return len(self.merchants) * ENROLLMENTS_PER_MEMBER


def seed(engine: Engine, rng: random.Random, members: int = MEMBERS) -> Population:
    """Programs, and `members` members enrolled in five of them each."""
    population = Population([_program(n, rng) for n in range(PROGRAMS)])
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO programs (id, name, qualifying_threshold, reward_config, "
                "display_content, rules) SELECT p->>'id', p->>'name', "
                "(p->>'qualifying_threshold')::int, p->'reward_config', p->'display_content', "
                "p->'rules' FROM jsonb_array_elements(CAST(:programs AS jsonb)) AS p"
            ),
            {"programs": orjson.dumps(population.programs).decode()},
        )
    enroll_more(engine, rng, population, members)
    return population


def analyze(engine: Engine) -> None:
    """Statistics for the planner, as a database in service has them after a bulk load."""
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


def enroll_more(engine: Engine, rng: random.Random, population: Population, members: int) -> None:
    """Enroll `members` more members, in chunks, each in five programs."""
    first = len(population.merchants)
    for chunk in range(first, first + members, 50_000):
        rows: list[tuple[str, str, str]] = []
        for m in range(chunk, min(chunk + 50_000, first + members)):
            member = f"m{m:07d}"
            chosen = rng.sample(population.programs, ENROLLMENTS_PER_MEMBER)
            population.merchants[member] = [x for p in chosen for x in p["rules"]["merchant_ids"]]
            rows += [(f"sc_{member}_{p['id']}", str(p["id"]), member) for p in chosen]
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO stamp_collections (id, program_id, member_id, created_at) "
                    "SELECT *, '2020-01-01T00:00:00Z' FROM unnest(CAST(:ids AS text[]), "
                    "CAST(:programs AS text[]), CAST(:members AS text[]))"
                ),
                {
                    "ids": [r[0] for r in rows],
                    "programs": [r[1] for r in rows],
                    "members": [r[2] for r in rows],
                },
            )
    analyze(engine)


HOT_MEMBERS = 2_000
HOT_SHARE = 0.8


def transactions(
    n: int,
    population: Population,
    rng: random.Random,
    prefix: str = "tx",
    matching: float = 0.5,
) -> list[dict[str, Any]]:
    """`n` clearings, mostly from a few busy members; `matching` of them at a merchant of one
    of the member's programs, the others at merchants no program names."""
    members = list(population.merchants)
    start = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    bodies: list[dict[str, Any]] = []
    for i in range(n):
        hot = rng.random() < HOT_SHARE
        member = rng.choice(members[:HOT_MEMBERS]) if hot else rng.choice(members)
        merchant = (
            rng.choice(population.merchants[member])
            if rng.random() < matching
            else f"mer_other_{rng.randrange(MERCHANTS)}"
        )
        bodies.append(
            {
                "id": f"{prefix}_{i}",
                "type": "clearing",
                "member_id": member,
                "amount": rng.randint(100, 5000),
                "currency": "GBP",
                "merchant": {"id": merchant, "name": "Shop", "mcc": "5814"},
                "card": {"id": "card_1", "scheme": "visa"},
                "occurred_at": datetime.fromtimestamp(start + i, UTC).isoformat(),
            }
        )
    return bodies


def single_records(topic: str, bodies: list[dict[str, object]]) -> list[ProducerRecord]:
    return [ProducerRecord(topic, orjson.dumps(b), str(b["member_id"]).encode()) for b in bodies]


def packed_records(topic: str, bodies: list[dict[str, object]], pack: int) -> list[ProducerRecord]:
    """Bank batches: up to `pack` transactions of one member key per message, in order."""
    by_member: dict[str, list[dict[str, object]]] = {}
    for body in bodies:
        by_member.setdefault(str(body["member_id"]), []).append(body)
    return [
        ProducerRecord(topic, orjson.dumps(group[i : i + pack]), member.encode())
        for member, group in by_member.items()
        for i in range(0, len(group), pack)
    ]
