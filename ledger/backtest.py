"""What a program would have done over past transactions: the real matcher and planner, no ledger.

The transactions are replayed in time order (`occurred_at`, then input order) through
`rules.Matcher` and `ledger.planner.plan_batch`, over an in-memory ledger
(`ledger.memory.InMemoryLedger`) where every member who makes a qualifying purchase holds a
collection enrolled at `enrolled_at`. Events are planned a day at a time (days on the
program's clock), in batches of at most `BATCH` events, so each stamp, void and reward falls
on the day of the events that caused it.

A **near miss** is a purchase event of the type the program stamps on, at a merchant the
program targets (the matcher's index leads to the program: its merchant ids, else its brand
ids, else its MCCs), that does not qualify. It is counted under the first condition that
failed, as `Matcher.explain` reports it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from ledger.batch import Incoming
from ledger.domain import local_day
from ledger.memory import SOURCE, Enrollment, InMemoryLedger
from ledger.model import Plan
from ledger.sieve import Selection
from rules import CardTransaction, Matcher, ProgramDefinition, ProgramStatus

BATCH = 5000
SINCE_EVER = datetime.min.replace(tzinfo=UTC)
REPORT_VERSION = 1


@dataclass
class Figures:
    """What the program did over a day, or over the whole run."""

    qualifying: int = 0
    stamps: int = 0
    voids: int = 0
    rewards: int = 0
    payout: Counter[str] = field(default_factory=Counter)  # minor units by currency
    members: int = 0
    near_misses: Counter[str] = field(default_factory=Counter)  # by failed condition

    def add(self, other: Figures) -> None:
        self.qualifying += other.qualifying
        self.stamps += other.stamps
        self.voids += other.voids
        self.rewards += other.rewards
        self.payout.update(other.payout)
        self.near_misses.update(other.near_misses)

    def eventful(self) -> bool:
        """Whether anything happened: a qualifying event, an effect or a near miss."""
        return any((self.qualifying, self.stamps, self.voids, self.rewards, self.near_misses))

    def as_json(self) -> dict[str, Any]:
        return {
            "qualifying": self.qualifying,
            "stamps": self.stamps,
            "voids": self.voids,
            "rewards": self.rewards,
            "payout": dict(sorted(self.payout.items())),
            "members": self.members,
            "near_misses": dict(sorted(self.near_misses.items())),
        }


@dataclass
class BacktestReport:
    """Figures per day and in total, and what was read, skipped and refused."""

    program: ProgramDefinition
    enrolled_at: datetime | None
    selection: Selection
    days: dict[date, Figures] = field(default_factory=dict)
    total: Figures = field(default_factory=Figures)

    def as_json(self) -> dict[str, Any]:
        """The stable shape of `--json` (docs/operations.md, "Backtest a program")."""
        lines = self.selection
        return {
            "version": REPORT_VERSION,
            "program": {"id": self.program.id, "name": self.program.name},
            "enrolled_from": None if self.enrolled_at is None else self.enrolled_at.isoformat(),
            "transactions": {
                "read": lines.read,
                "skipped": lines.skipped,
                "invalid": lines.refused,
                "invalid_first": [{"where": w, "reason": r} for w, r in lines.reasons],
            },
            "days": [{"day": day.isoformat(), **f.as_json()} for day, f in self.days.items()],
            "total": self.total.as_json(),
        }


def backtest(
    program: ProgramDefinition, selection: Selection, enrolled_at: datetime | None = None
) -> BacktestReport:
    """Replay the selected transactions through the program; nothing is written anywhere."""
    replay = _Replay(program, enrolled_at or SINCE_EVER)
    ordered = sorted(selection.transactions, key=lambda pair: (pair[1].occurred_at, pair[0]))
    report = BacktestReport(program, enrolled_at, selection)
    # A day of transactions that changed nothing is left out: which of them were read depends
    # on what the sieve skipped, and the report must not.
    report.days = {d: f for d, f in replay.run(tx for _, tx in ordered).items() if f.eventful()}
    for figures in report.days.values():
        report.total.add(figures)
    report.total.members = len(replay.reached)
    return report


class _Replay:
    def __init__(self, program: ProgramDefinition, enrolled_at: datetime) -> None:
        # The question is what the program would have done had it been live: run it active.
        self.program = program.model_copy(update={"status": ProgramStatus.ACTIVE})
        self.enrolled_at = enrolled_at
        self.matcher = Matcher([self.program])
        self.ledger = InMemoryLedger({program.id: self.program}, announce=frozenset())
        self.stamp_type = str(self.program.rules.stamp_on)
        self.reached: set[str] = set()
        self.seen: set[tuple[str, str]] = set()

    def run(self, transactions: Iterable[CardTransaction]) -> dict[date, Figures]:
        days: dict[date, Figures] = {}
        batch: list[Incoming] = []
        today: date | None = None
        members: set[str] = set()
        for tx in transactions:
            day = local_day(self.program, tx.occurred_at)
            if day != today or len(batch) >= BATCH:
                self._flush(batch, days, today, members)
                batch = []
                if day != today:
                    members = set()
                today = day
            figures = days.setdefault(day, Figures())
            batch.append(self._judge(tx, figures))
        self._flush(batch, days, today, members)
        return days

    def _judge(self, tx: CardTransaction, figures: Figures) -> Incoming:
        if not tx.is_purchase:
            return Incoming(tx, (), SOURCE)
        judged, related = self.matcher.judge(tx)
        qualifying = tuple(p.id for p in judged)
        if qualifying:
            member = tx.member_id
            cid = f"sc_{self.program.id}_{member}"
            self.ledger.enroll(Enrollment(cid, self.program.id, member, self.enrolled_at))
        if tx.type == self.stamp_type:
            if qualifying:
                if (tx.member_id, tx.id) not in self.seen:
                    self.seen.add((tx.member_id, tx.id))
                    figures.qualifying += 1
            else:
                for decision in self.matcher.explain(tx):
                    if decision.condition is not None:
                        figures.near_misses[decision.condition] += 1
        return Incoming(tx, qualifying, SOURCE, related)

    def _flush(
        self, batch: list[Incoming], days: dict[date, Figures], day: date | None, members: set[str]
    ) -> None:
        if not batch or day is None:
            return
        plan = self.ledger.apply(batch, now=batch[-1].tx.occurred_at)
        figures = days[day]
        figures.stamps += plan.outcome.stamps
        figures.voids += plan.outcome.voids
        figures.rewards += len(plan.rewards)
        for reward in plan.rewards:
            figures.payout[reward.currency] += reward.amount
        members.update(self._live_members(plan))
        figures.members = len(members)
        self.reached |= members

    def _live_members(self, plan: Plan) -> set[str]:
        changed = (*plan.new_stamps, *plan.changed_stamps)
        collections = self.ledger.collections
        return {collections[s.collection_id].member_id for s in changed if s.status.value == "live"}
