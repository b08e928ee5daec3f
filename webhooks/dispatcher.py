"""The webhook dispatcher: claims due deliveries, sends them, records every attempt.

Several dispatchers may run side by side (the claim skips rows another holds). Each keeps
at most `concurrency` requests in flight, and at most `concurrency_per_endpoint` to any one
endpoint, so an endpoint that hangs holds only its own share until the deadline cuts it
off. It claims up to as many again ahead, so a freed slot starts its next send without a
query. Sending happens outside any transaction; results are written in batches, and the
store disables an endpoint that answered 410 Gone or failed without a success for too long
(`webhooks.health`): each of those is an alert, like each delivery that dies. Once a minute
it also drops the previous secrets whose grace period has ended, and every 15 s it reads the
backlog for its metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import cast

from ledger.errors import StorageError
from webhooks.attempts import Sender, utc_now
from webhooks.config import DeliveryConfig
from webhooks.metrics import BACKLOG_EVERY, DispatcherMetrics
from webhooks.store import AttemptResult, Claim, ClaimRequest, DeliveryStore, Recorded

log = logging.getLogger(__name__)

RECORD_BATCH = 500
# Claimed ahead per slot: as many waiting as sending, so the sender never waits for a query.
READY_FACTOR = 2
SHUTDOWN_GRACE_S = 10.0
MAX_BACKOFF_S = 5.0
SECRET_SWEEP = timedelta(minutes=1)


async def _wait(event: asyncio.Event, timeout_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()


class Dispatcher:
    """Delivers due deliveries until `stop` is set, then finishes and records the work in flight."""

    def __init__(
        self,
        store: DeliveryStore,
        sender: Sender,
        config: DeliveryConfig,
        clock: Callable[[], datetime] = utc_now,
        metrics: DispatcherMetrics | None = None,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._next_backlog: datetime | None = None
        self._sender = sender
        self._config = config
        self._clock = clock
        self._sending_to: Counter[str] = Counter()
        self._sending: set[asyncio.Task[None]] = set()
        # Claimed ahead, per endpoint, so a freed slot starts its next send without a query.
        self._ready: dict[str, deque[Claim]] = {}
        self._to_release: list[Claim] = []
        self._results: asyncio.Queue[AttemptResult] = asyncio.Queue()
        self._slot_freed = asyncio.Event()
        # Endpoints that answered 410 Gone, skipped until the record disabling them is written.
        self._gone: set[str] = set()
        self._group: asyncio.TaskGroup | None = None
        self._next_sweep: datetime | None = None

    async def run(self, stop: asyncio.Event) -> None:
        log.info(
            "webhook dispatcher started: %d in flight at most, %d per endpoint",
            self._config.concurrency,
            self._config.concurrency_per_endpoint,
        )
        async with asyncio.TaskGroup() as group:
            self._group = group
            recorder = group.create_task(self._record_forever())
            await self._claim_until(stop)
            await self._finish()
            recorder.cancel()
        log.info("webhook dispatcher stopped")

    async def _claim_until(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            self._slot_freed.clear()
            wanted = READY_FACTOR * self._config.concurrency - self._held()
            try:
                await self._forget_expired_secrets()
                await self._measure_backlog()
                await self._release()
                claims = await self._claim(wanted) if wanted > 0 else []
            except StorageError as exc:
                failures += 1
                log.warning("claiming webhook deliveries failed (%s); retrying", exc)
                await _wait(stop, min(MAX_BACKOFF_S, 0.1 * 2**failures))
                continue
            failures = 0
            for claim in claims:
                self._ready.setdefault(claim.endpoint_id, deque()).append(claim)
            self._start_ready()
            if len(claims) < wanted or wanted <= 0:
                # Nothing more is due, or every slot is taken: look again when one frees up.
                await _wait_any(stop, self._slot_freed, self._config.poll_interval_s)

    async def _forget_expired_secrets(self) -> None:
        now = self._clock()
        if self._next_sweep is None or now >= self._next_sweep:
            await self._store.forget_expired_secrets(now)
            self._next_sweep = now + SECRET_SWEEP

    async def _measure_backlog(self) -> None:
        now = self._clock()
        if self._metrics is None or (self._next_backlog is not None and now < self._next_backlog):
            return
        self._metrics.backlog(await self._store.backlog(), now)
        self._next_backlog = now + BACKLOG_EVERY

    def _held(self) -> int:
        return len(self._sending) + sum(map(len, self._ready.values()))

    async def _claim(self, wanted: int) -> list[Claim]:
        busy = Counter(self._sending_to)
        busy.update({endpoint: len(ready) for endpoint, ready in self._ready.items()})
        request = ClaimRequest(
            now=self._clock(),
            limit=wanted,
            per_endpoint=READY_FACTOR * self._config.concurrency_per_endpoint,
            busy=busy,
            first_delay_s=self._config.schedule.first_delay(),
            lease_s=self._config.lease_s,
            exclude=frozenset(self._gone),
        )
        return await self._store.claim(request)

    async def _release(self) -> None:
        if self._to_release:
            await self._store.release(self._to_release, self._clock())
            self._to_release = []

    def _start_ready(self) -> None:
        limit = self._config.concurrency_per_endpoint
        for endpoint in list(self._ready):
            ready = self._ready[endpoint]
            while ready and self._sending_to[endpoint] < limit:
                if len(self._sending) >= self._config.concurrency:
                    return
                self._launch(ready.popleft())
            if not ready:
                del self._ready[endpoint]

    def _launch(self, claim: Claim) -> None:
        assert self._group is not None
        self._sending_to[claim.endpoint_id] += 1
        task = self._group.create_task(self._deliver(claim))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _deliver(self, claim: Claim) -> None:
        try:
            result = await self._sender.send(claim)
        finally:
            self._sending_to[claim.endpoint_id] -= 1
            if not self._sending_to[claim.endpoint_id]:
                del self._sending_to[claim.endpoint_id]
            self._slot_freed.set()
        if result.outcome.endpoint_gone:
            self._gone.add(claim.endpoint_id)
            self._to_release += self._ready.pop(claim.endpoint_id, ())
        self._results.put_nowait(result)
        # The task that ends frees a slot: start what is ready (this task is still counted).
        self._sending.discard(cast(asyncio.Task[None], asyncio.current_task()))
        self._start_ready()

    async def _finish(self) -> None:
        # Claims not started go back at once; attempts in flight end by their deadline, and
        # their results are recorded before leaving.
        for ready in self._ready.values():
            self._to_release += ready
        self._ready.clear()
        try:
            await self._release()
        except StorageError as exc:
            log.error("returning unsent claims failed (%s); they come back after the lease", exc)
        if self._sending:
            await asyncio.wait(self._sending)
        try:
            async with asyncio.timeout(SHUTDOWN_GRACE_S):
                await self._results.join()
        except TimeoutError:
            log.error(
                "%d webhook attempts were not recorded at shutdown; their deliveries will be "
                "sent again when their lease ends",
                self._results.qsize(),
            )

    async def _record_forever(self) -> None:
        while True:
            batch = [await self._results.get()]
            while len(batch) < RECORD_BATCH and not self._results.empty():
                batch.append(self._results.get_nowait())
            await self._record(batch)
            for _ in batch:
                self._results.task_done()

    async def _record(self, batch: list[AttemptResult]) -> None:
        failures = 0
        while True:
            try:
                recorded = await self._store.record(batch, self._clock())
            except StorageError as exc:
                failures += 1
                log.warning("recording %d webhook attempts failed (%s); retrying", len(batch), exc)
                await asyncio.sleep(min(MAX_BACKOFF_S, 0.1 * 2**failures))
                continue
            self._recorded(batch, recorded)
            return

    def _recorded(self, batch: list[AttemptResult], recorded: Recorded) -> None:
        if self._metrics is not None:
            self._metrics.recorded(result.outcome.status for result in batch)
        dead = set(recorded.dead)
        for result in batch:
            if result.outcome.endpoint_gone:
                self._gone.discard(result.claim.endpoint_id)
            if result.claim.delivery_id in dead:
                _alert_dead(result)
        for endpoint_id, reason in recorded.disabled.items():
            # Its deliveries ended with it: what was claimed ahead is not sent.
            self._to_release += self._ready.pop(endpoint_id, ())
            _alert_disabled(endpoint_id, reason)


async def _wait_any(stop: asyncio.Event, other: asyncio.Event, timeout_s: float) -> None:
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(other.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()


def _alert_dead(result: AttemptResult) -> None:
    claim = result.claim
    log.error(
        "ALERT webhook delivery dead: message %s to endpoint %s failed all %d attempts "
        "(last: %s); redeliver it once the endpoint is fixed",
        claim.message_id,
        claim.endpoint_id,
        claim.attempt,
        result.error or f"HTTP {result.status_code}",
        extra={
            "alert": "webhook_delivery_dead",
            "delivery_id": claim.delivery_id,
            "message_id": claim.message_id,
            "endpoint_id": claim.endpoint_id,
        },
    )


def _alert_disabled(endpoint_id: str, reason: str) -> None:
    log.error(
        "ALERT webhook endpoint disabled: endpoint %s (%s); its pending deliveries end. "
        "Enable it once it is fixed, then redeliver what it missed",
        endpoint_id,
        reason,
        extra={"alert": "webhook_endpoint_disabled", "endpoint_id": endpoint_id, "reason": reason},
    )
