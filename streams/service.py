"""Use cases of the stream worker: stamp a batch of messages, apply program definitions.

A batch's effects commit in one database transaction per chunk; the caller acknowledges its
messages only after `stamp` returns. Infrastructure failures are retried (`ledger.failures`)
and then raised: the caller stops without acknowledging. An event the ledger cannot take is
found by halving its chunk and dead-lettered with its reason, so the rest goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.batch import BatchOutcome, Rejected, Source
from ledger.catalog import ProgramCatalog
from ledger.database import transaction
from ledger.dead_letters import record_dead_letters
from ledger.errors import AutostampError, DataRefused, InfrastructureError
from ledger.failures import Backoff, classify, retrying
from ledger.programs import Verdict, apply_definition
from ledger.pseudonyms import Pseudonyms
from ledger.stamping import stamp_batch
from rules import CardTransaction, ProgramDefinition
from streams.decoding import Decoded, RawMessage, decode_into

log = logging.getLogger(__name__)

Located = tuple[CardTransaction, Source]

# Events of one chunk that fail alone for no reason the database gives (a bug, not bad data)
# before the worker concludes that something is wrong with it rather than with the events.
MAX_UNEXPLAINED_FAILURES = 3


class RepeatedFailure(AutostampError):
    """Several events of one chunk failed alone, not for their data: stop, dead-letter none."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class StampingService:
    """Matches decoded transactions against the ledger's programs and stamps them exactly once."""

    engine: AsyncEngine
    backoff: Backoff = field(default_factory=Backoff)
    clock: Callable[[], datetime] = _now
    catalog: ProgramCatalog = field(default_factory=ProgramCatalog)
    chunk: int = 2000
    totals: BatchOutcome = field(default_factory=BatchOutcome)
    # What erased members are called: their later events act on the renamed rows.
    pseudonyms: Pseudonyms | None = None

    async def stamp(self, messages: Sequence[RawMessage]) -> BatchOutcome:
        """Apply a batch of messages; what cannot be applied is dead-lettered, not lost."""
        # Bank batch messages can carry thousands of transactions each: bound the work (and
        # memory) of one database transaction; the messages are acked after the last chunk.
        outcome, pending = BatchOutcome(), Decoded()
        for message in messages:
            decode_into(message, pending)
            if len(pending.events) >= self.chunk:
                outcome += await self._apply_chunk(pending, messages)
                pending = Decoded()
        if pending.events or pending.rejected:
            outcome += await self._apply_chunk(pending, messages)
        self.totals += outcome
        return outcome

    async def _apply_chunk(self, decoded: Decoded, messages: Sequence[RawMessage]) -> BatchOutcome:
        try:
            return await self._apply_retrying(decoded.events, decoded.rejected)
        except InfrastructureError:
            raise
        except Exception as exc:
            log.warning("a chunk of %d events failed (%s); isolating", len(decoded.events), exc)
            return await self._isolate(decoded, messages)

    async def _apply_retrying(
        self, events: Sequence[Located], rejected: Sequence[Rejected]
    ) -> BatchOutcome:
        return await retrying(lambda: self._apply(events, rejected), self.backoff, "stamping")

    async def _apply(self, events: Sequence[Located], rejected: Sequence[Rejected]) -> BatchOutcome:
        async with transaction(self.engine) as conn:
            await self.catalog.sync(conn)
            incoming = [self.catalog.incoming(tx, src) for tx, src in events]
            programs, now = self.catalog.programs, self.clock()
            return await stamp_batch(conn, incoming, rejected, programs, now, self.pseudonyms)

    async def _isolate(self, decoded: Decoded, messages: Sequence[RawMessage]) -> BatchOutcome:
        """Apply the chunk by halves, in order; an event that fails alone is dead-lettered."""
        raw = {(m.topic, m.partition, m.offset): m for m in messages}
        failed: list[tuple[Located, Exception]] = []

        async def halves(part: Sequence[Located]) -> BatchOutcome:
            try:
                return await self._apply_retrying(part, [])
            except InfrastructureError:
                raise
            except Exception as exc:
                if len(part) > 1:
                    middle = len(part) // 2
                    return await halves(part[:middle]) + await halves(part[middle:])
                failed.append((part[0], exc))
                unexplained = [e for _, e in failed if not isinstance(e, DataRefused)]
                if len(unexplained) > MAX_UNEXPLAINED_FAILURES:
                    raise RepeatedFailure(f"{len(unexplained)} events failed alone") from exc
                return BatchOutcome()

        outcome = await halves(decoded.events)
        poison = [_poison(located, exc, raw) for located, exc in failed]
        return outcome + await self._apply_retrying([], [*decoded.rejected, *poison])

    async def judge_programs(
        self, valid: Sequence[tuple[ProgramDefinition, Source]], refused: Sequence[Rejected]
    ) -> Judgement:
        """Apply a batch of the programs topic in one transaction: the valid definitions, each
        in a savepoint, and the refused ones as dead letters, with any definition the ledger
        refuses (`DataRefused`, a reused version among them) beside them. Whoever sees a
        definition of the batch applied sees its refusals too."""

        async def judge() -> Judgement:
            judged = Judgement(refused=list(refused))
            async with transaction(self.engine) as conn:
                for program, source in valid:
                    try:
                        async with conn.begin_nested():
                            verdict = await apply_definition(conn, program, self.clock())
                        judged.verdicts.append((program, verdict))
                    except (DBAPIError, DataRefused) as exc:
                        ours = exc if isinstance(exc, DataRefused) else classify(exc)
                        if not isinstance(ours, DataRefused):
                            raise
                        body = program.model_dump_json().encode()
                        judged.refused.append(
                            Rejected(source, program.id.encode(), body, str(ours))
                        )
                await record_dead_letters(conn, judged.refused)
            return judged

        return await retrying(judge, self.backoff, "applying program definitions")


@dataclass
class Judgement:
    """What one batch of the programs topic did: the verdict on each valid definition, in
    order, and every refusal recorded as a dead letter."""

    verdicts: list[tuple[ProgramDefinition, Verdict]] = field(default_factory=list)
    refused: list[Rejected] = field(default_factory=list)

    def ids(self, verdict: Verdict) -> list[str]:
        """The programs of the definitions that got `verdict`, in order."""
        return [program.id for program, given in self.verdicts if given is verdict]

    def described(self, verdict: Verdict) -> str:
        """The definitions that got `verdict`, as `id version N`, for a log line."""
        found = [f"{p.id} version {p.version}" for p, given in self.verdicts if given is verdict]
        return ", ".join(found)


def _poison(
    located: Located, exc: Exception, raw: dict[tuple[str, int, int], RawMessage]
) -> Rejected:
    tx, source = located
    log.error("transaction %s cannot be applied; dead-lettering it: %s", tx.id, exc)
    message = raw[(source.topic, source.partition, source.offset)]
    whole = source.item < 0
    value = (message.value or b"") if whole else tx.model_dump_json().encode()
    reason = (
        str(exc) if isinstance(exc, DataRefused) else f"processing failed: {type(exc).__name__}"
    )
    return Rejected(source, message.key, value, reason[:1000])
