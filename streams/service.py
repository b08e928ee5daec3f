"""Use cases of the stream worker: stamp a batch of messages, keep the programs current."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.errors import StorageError
from ledger.program_definitions import apply_definitions, load_definitions
from ledger.stamping import BatchOutcome, Incoming, Rejected, Source, apply_batch
from rules import CardTransaction, Matcher, ProgramDefinition
from streams.decoding import Decoded, RawMessage, decode_into

log = logging.getLogger(__name__)

Events = Sequence[tuple[CardTransaction, Source]]

# SQLSTATEs worth retrying as they are: serialization failure, deadlock, lost connection.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "57P01", "08000", "08003", "08006"})


def _transient(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None)
    return (
        isinstance(exc, OperationalError)
        or exc.connection_invalidated
        or code in RETRYABLE_SQLSTATES
    )


@dataclass
class RetryPolicy:
    """How long a transient database failure is retried before the worker gives up."""

    attempts: int = 8
    first_delay_s: float = 0.2
    max_delay_s: float = 10.0

    def delays(self) -> list[float]:
        steps = (self.first_delay_s * 2**n for n in range(self.attempts - 1))
        return [min(step, self.max_delay_s) for step in steps]


@dataclass
class Totals:
    """Running counts of what the worker did, for logs and the benchmark."""

    messages: int = 0
    processed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    stamps: int = 0
    voids: int = 0
    rewards: int = 0

    def add(self, outcome: BatchOutcome, messages: int) -> None:
        self.messages += messages
        self.processed += outcome.processed
        self.duplicates += outcome.duplicates
        self.dead_lettered += outcome.dead_lettered
        self.stamps += outcome.stamps
        self.voids += outcome.voids
        self.rewards += outcome.rewards


@dataclass
class StampingService:
    """Matches decoded transactions against the live programs and stamps them exactly once."""

    engine: AsyncEngine
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    matcher: Matcher = field(default_factory=Matcher)
    programs: dict[str, ProgramDefinition] = field(default_factory=dict)
    totals: Totals = field(default_factory=Totals)
    chunk: int = 2000
    _programs_seen_at: datetime | None = None

    async def stamp(self, messages: Sequence[RawMessage]) -> BatchOutcome:
        """Apply a batch; a message that cannot be applied alone is dead-lettered, not lost."""
        # Bank batch messages can carry thousands of transactions each: bound the work (and
        # memory) of one database transaction; the messages are acked after the last chunk.
        outcomes, pending = [], Decoded()
        for message in messages:
            decode_into(message, pending)
            if len(pending.events) >= self.chunk:
                outcomes.append(await self._apply_chunk(pending, messages))
                pending = Decoded()
        if pending.events or pending.rejected or not outcomes:
            outcomes.append(await self._apply_chunk(pending, messages))
        outcome = _sum(outcomes)
        self.totals.add(outcome, len(messages))
        return outcome

    async def _apply_chunk(self, decoded: Decoded, messages: Sequence[RawMessage]) -> BatchOutcome:
        events, rejected = decoded.events, decoded.rejected
        try:
            return await self._apply(events, rejected)
        except StorageError:
            raise
        except Exception:
            log.exception("batch of %d failed; applying its events one by one", len(events))
            return await self._apply_one_by_one(events, rejected, messages)

    def _match(self, tx: CardTransaction, source: Source) -> Incoming:
        matched = tuple(p.id for p in self.matcher.match(tx)) if tx.stamps else ()
        return Incoming(tx, matched, source)

    async def _apply(self, events: Events, rejected: Sequence[Rejected]) -> BatchOutcome:
        incoming = [self._match(tx, source) for tx, source in events]
        for delay in [*self.retry.delays(), None]:
            try:
                async with self.engine.begin() as conn:
                    return await apply_batch(conn, incoming, rejected, self.programs, self.clock())
            except DBAPIError as exc:
                if not _transient(exc):
                    raise
                if delay is None:
                    raise StorageError(f"database unavailable: {exc.orig}") from exc
                log.warning("database error (%s); retrying in %.1fs", exc.orig, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _apply_one_by_one(
        self, events: Events, rejected: Sequence[Rejected], messages: Sequence[RawMessage]
    ) -> BatchOutcome:
        """Find the poison event: each one alone; the one that still fails is dead-lettered."""
        raw = {(m.topic, m.partition, m.offset): m for m in messages}
        outcomes = [await self._apply([], rejected)]
        for tx, source in events:
            try:
                outcomes.append(await self._apply([(tx, source)], []))
            except StorageError:
                raise
            except Exception as exc:
                log.exception("transaction %s cannot be applied; dead-lettering it", tx.id)
                message = raw[(source.topic, source.partition, source.offset)]
                reason = f"processing failed: {type(exc).__name__}: {exc}"[:1000]
                whole = source.item < 0
                value = message.value if whole else tx.model_dump_json().encode()
                poison = Rejected(source, message.key, value or b"", reason)
                outcomes.append(await self._apply([], [poison]))
        return _sum(outcomes)

    async def refresh_programs(self) -> int:
        """Load programs changed since the last look into the matcher; returns how many."""
        async with self.engine.connect() as conn:
            changed, self._programs_seen_at = await load_definitions(conn, self._programs_seen_at)
        fresh = [p for p in changed if self.programs.get(p.id) != p]
        for program in fresh:
            self.programs[program.id] = program
            self.matcher.upsert(program)
        if fresh:
            log.info("programs updated: %s", ", ".join(sorted(p.id for p in fresh)[:20]))
        return len(fresh)

    async def apply_programs(self, programs: Sequence[ProgramDefinition]) -> list[str]:
        """Write definitions from the programs topic to the ledger (newer versions only)."""
        async with self.engine.begin() as conn:
            return await apply_definitions(conn, programs)


def _sum(outcomes: Sequence[BatchOutcome]) -> BatchOutcome:
    return BatchOutcome(
        *(sum(getattr(o, name) for o in outcomes) for name in BatchOutcome.__dataclass_fields__)
    )
