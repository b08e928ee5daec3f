"""The dispatcher's storage port and its PostgreSQL adapter: claim due deliveries, record attempts.

A claim is a short transaction: `FOR UPDATE SKIP LOCKED` keeps dispatchers off each other's
rows, and `next_attempt_at` moves forward by the lease, so a crashed dispatcher's claims come
due again. The lease's exact time is the claim's fence: a result is applied only while the
delivery still holds it, so a dispatcher that lost its lease cannot overwrite a newer one.

Recording a batch is one statement: the attempts, their deliveries, and each endpoint's run
of failures (`failing_since`). Only when `webhooks.health` gives up on an endpoint does a
second statement, in the same transaction, disable it and end its pending deliveries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.database import transaction
from ledger.sealing import Keyring
from ledger.webhook_endpoints import Disabling, disable_failing_endpoints
from ledger.webhook_secrets import forget_expired_secrets, open_secret
from webhooks.health import EndpointRun, disable_reason
from webhooks.metrics import Backlog
from webhooks.retries import Outcome

# How many due rows one claim looks at per row it may take: rows of endpoints that are at
# their limit are skipped inside this window.
SCAN_FACTOR = 4


@dataclass(frozen=True)
class Claim:
    """A delivery this dispatcher holds until `lease`: what to send, where, signed with what.

    The secrets are opened (plaintext `whsec_...`): kept out of the repr, so out of logs.
    """

    delivery_id: int
    message_id: str
    endpoint_id: str
    url: str
    body: bytes
    secret: str = field(repr=False)
    previous_secret: str | None = field(repr=False)
    previous_secret_expires_at: datetime | None
    attempt: int
    lease: datetime


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt got (a status or an error), and what follows for its delivery."""

    claim: Claim
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    response_snippet: str | None
    outcome: Outcome


@dataclass(frozen=True)
class ClaimRequest:
    """How much to claim: overall, per endpoint (minus those in flight), from which endpoints."""

    now: datetime
    limit: int
    per_endpoint: int
    busy: Mapping[str, int]
    first_delay_s: float
    lease_s: float
    exclude: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Recorded:
    """What a batch of results ended: deliveries that died, endpoints disabled (with why)."""

    dead: list[int]
    disabled: dict[str, str]


class DeliveryStore(Protocol):
    """Where the dispatcher takes deliveries from and puts attempts back."""

    async def claim(self, request: ClaimRequest) -> list[Claim]: ...

    async def record(self, results: Sequence[AttemptResult], now: datetime) -> Recorded:
        """Apply the results: attempts, deliveries, and the health of their endpoints."""
        ...

    async def release(self, claims: Sequence[Claim], now: datetime) -> None:
        """Give back claims that were not sent: due again at once, the attempt not counted."""
        ...

    async def forget_expired_secrets(self, now: datetime) -> int:
        """Drop the previous secrets whose grace period has ended; how many."""
        ...

    async def backlog(self) -> Backlog:
        """How many deliveries wait, are held and are dead, and when the oldest waiting began."""
        ...


# Each count reads a partial index of its status (pending, dead); held ones are few.
_BACKLOG = text(
    """
    SELECT (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending') AS pending,
           (SELECT min(created_at) FROM webhook_deliveries WHERE status = 'pending') AS oldest,
           (SELECT count(*) FROM webhook_deliveries WHERE status = 'endpoint_disabled') AS held,
           (SELECT count(*) FROM webhook_deliveries WHERE status = 'dead') AS dead
    """
)

_CLAIM = text(
    """
    WITH candidates AS (
        SELECT d.id, d.endpoint_id, d.next_attempt_at
        FROM webhook_deliveries d
        WHERE d.status = 'pending' AND d.next_attempt_at <= :now
          AND (d.attempts > 0 OR d.next_attempt_at <= :first_due)
          AND d.endpoint_id <> ALL (CAST(:full AS text[]))
        ORDER BY d.next_attempt_at
        LIMIT :scan
        FOR UPDATE SKIP LOCKED
    ), chosen AS (
        SELECT ranked.id FROM (
            SELECT c.id, c.next_attempt_at,
                   coalesce(b.busy, 0) + row_number() OVER (
                       PARTITION BY c.endpoint_id ORDER BY c.next_attempt_at, c.id) AS slot
            FROM candidates c
            LEFT JOIN unnest(CAST(:busy_ids AS text[]), CAST(:busy_counts AS int[]))
                 AS b(endpoint_id, busy) ON b.endpoint_id = c.endpoint_id
        ) ranked
        WHERE ranked.slot <= :per_endpoint
        ORDER BY ranked.next_attempt_at
        LIMIT :limit
    )
    UPDATE webhook_deliveries d
    SET attempts = d.attempts + (e.disabled_at IS NULL AND e.deleted_at IS NULL)::int,
        next_attempt_at = :lease, updated_at = :now,
        -- An endpoint disabled while this delivery was being written: end it here.
        status = CASE WHEN e.disabled_at IS NULL AND e.deleted_at IS NULL
                      THEN 'pending' ELSE 'endpoint_disabled' END
    FROM chosen, webhook_messages m, webhook_endpoints e
    WHERE d.id = chosen.id AND m.id = d.message_id AND e.id = d.endpoint_id
    RETURNING d.id, d.message_id, d.endpoint_id, d.attempts, d.status, e.url, m.body,
              e.secret, e.previous_secret, e.previous_secret_expires_at
    """
)

_RELEASE = text(
    """
    UPDATE webhook_deliveries d
    SET next_attempt_at = :now, attempts = d.attempts - 1, updated_at = :now
    FROM unnest(CAST(:ids AS bigint[]), CAST(:leases AS timestamptz[])) AS u(id, lease)
    WHERE d.id = u.id AND d.status = 'pending' AND d.next_attempt_at = u.lease
    """
)

# Every attempt is kept; the delivery changes only while it still holds this claim's lease.
# Per endpoint, a 2xx ends the run of failures and the first failure after it begins one
# (a success older than the stored run, recorded late, leaves the run as it is). Only the
# endpoints whose run changes are written, locked in id order: dispatchers recording at once
# neither queue behind a healthy endpoint's row nor deadlock over two of them.
_RECORD = text(
    """
    WITH batch AS (
        SELECT *, b.status = 'delivered' AS ok,
               max(b.at) FILTER (WHERE b.status = 'delivered')
                   OVER (PARTITION BY b.endpoint_id) AS last_ok
        FROM unnest(CAST(:ids AS bigint[]), CAST(:endpoints AS text[]),
                    CAST(:at AS timestamptz[]), CAST(:codes AS int[]),
                    CAST(:latencies AS int[]), CAST(:errors AS text[]),
                    CAST(:snippets AS text[]), CAST(:leases AS timestamptz[]),
                    CAST(:statuses AS text[]), CAST(:next AS timestamptz[]))
             AS b(id, endpoint_id, at, code, latency_ms, error, snippet, lease, status, next_at)
    ), attempts AS (
        INSERT INTO webhook_attempts
            (delivery_id, attempted_at, status_code, latency_ms, error, response_snippet)
        SELECT id, at, code, latency_ms, error, snippet FROM batch
    ), deliveries AS (
        UPDATE webhook_deliveries d
        SET status = b.status, next_attempt_at = coalesce(b.next_at, d.next_attempt_at),
            updated_at = :now
        FROM batch b
        WHERE d.id = b.id AND d.status = 'pending' AND d.next_attempt_at = b.lease
        RETURNING d.id, d.endpoint_id, d.status
    ), runs AS (
        SELECT endpoint_id, max(last_ok) AS ok_at, bool_or(status = 'endpoint_disabled') AS gone,
               min(at) FILTER (WHERE NOT ok AND at > coalesce(last_ok, '-infinity')) AS failed_from,
               max(at) FILTER (WHERE NOT ok AND at > coalesce(last_ok, '-infinity')) AS failed_at
        FROM batch GROUP BY endpoint_id
    ), changed AS (
        SELECT e.id, n.failing_since
        FROM webhook_endpoints e
        JOIN runs r ON r.endpoint_id = e.id
        CROSS JOIN LATERAL (
            SELECT CASE WHEN r.ok_at IS NULL OR e.failing_since > r.ok_at
                        THEN least(e.failing_since, r.failed_from)
                        ELSE r.failed_from END AS failing_since
        ) n
        WHERE e.failing_since IS DISTINCT FROM n.failing_since
        ORDER BY e.id
        FOR UPDATE OF e
    ), health AS (
        UPDATE webhook_endpoints e SET failing_since = c.failing_since
        FROM changed c WHERE e.id = c.id
        RETURNING e.id, e.failing_since
    ), dead AS (
        SELECT endpoint_id, array_agg(id) AS ids FROM deliveries
        WHERE status = 'dead' GROUP BY endpoint_id
    )
    SELECT r.endpoint_id, r.failed_at, r.gone, coalesce(x.ids, '{}') AS dead,
           CASE WHEN h.id IS NULL THEN e.failing_since ELSE h.failing_since END AS failing_since
    FROM runs r
    JOIN webhook_endpoints e ON e.id = r.endpoint_id
    LEFT JOIN health h ON h.id = r.endpoint_id
    LEFT JOIN dead x ON x.endpoint_id = r.endpoint_id
    """
)


class SqlDeliveryStore:
    """The DeliveryStore on the ledger's PostgreSQL database."""

    def __init__(self, engine: AsyncEngine, *, disable_after: timedelta, keyring: Keyring) -> None:
        self._engine = engine
        # Opens the sealed secrets of the endpoints claimed.
        self._keyring = keyring
        # How long an endpoint may fail without a success before it is disabled; zero: never.
        self._disable_after = disable_after

    async def claim(self, request: ClaimRequest) -> list[Claim]:
        lease = request.now + timedelta(seconds=request.lease_s)
        busy = {e: n for e, n in request.busy.items() if n > 0}
        params = {
            "now": request.now,
            "first_due": request.now - timedelta(seconds=request.first_delay_s),
            "full": [e for e, n in busy.items() if n >= request.per_endpoint]
            + sorted(request.exclude),
            "scan": request.limit * SCAN_FACTOR,
            "busy_ids": list(busy),
            "busy_counts": list(busy.values()),
            "per_endpoint": request.per_endpoint,
            "limit": request.limit,
            "lease": lease,
        }
        async with transaction(self._engine) as conn:
            rows = (await conn.execute(_CLAIM, params)).all()
        return [self._claim(row, lease) for row in rows if row.status == "pending"]

    def _claim(self, row: Row[*tuple[Any, ...]], lease: datetime) -> Claim:
        # A secret that does not open (SecretKeyError) stops the dispatcher: the keys are
        # wrong, and an operator must fix them; the claims come due again after the lease.
        previous = row.previous_secret
        return Claim(
            delivery_id=row.id,
            message_id=row.message_id,
            endpoint_id=row.endpoint_id,
            url=row.url,
            body=row.body.encode(),
            secret=open_secret(self._keyring, row.endpoint_id, "secret", row.secret),
            previous_secret=None
            if previous is None
            else open_secret(self._keyring, row.endpoint_id, "previous_secret", previous),
            previous_secret_expires_at=row.previous_secret_expires_at,
            attempt=row.attempts,
            lease=lease,
        )

    async def forget_expired_secrets(self, now: datetime) -> int:
        async with transaction(self._engine) as conn:
            return await forget_expired_secrets(conn, now)

    async def backlog(self) -> Backlog:
        async with transaction(self._engine) as conn:
            row = (await conn.execute(_BACKLOG)).one()
        return Backlog(row.pending, row.oldest, row.held, row.dead)

    async def record(self, results: Sequence[AttemptResult], now: datetime) -> Recorded:
        disabled: dict[str, str] = {}
        async with transaction(self._engine) as conn:
            rows = (await conn.execute(_RECORD, _record_columns(results, now))).all()
            disablings = self._disablings(rows)
            if disablings:
                disabled = await disable_failing_endpoints(conn, disablings, now)
        return Recorded([i for row in rows for i in row.dead], disabled)

    def _disablings(self, rows: Sequence[Row[*tuple[Any, ...]]]) -> list[Disabling]:
        found = []
        for row in rows:
            run = EndpointRun(row.endpoint_id, row.failing_since, row.failed_at, row.gone)
            if reason := disable_reason(run, self._disable_after):
                # A 410 disables whatever came before; a run of failures, only if it goes on.
                since = None if run.gone else run.failing_since
                found.append(Disabling(run.endpoint_id, reason, since))
        return found

    async def release(self, claims: Sequence[Claim], now: datetime) -> None:
        params = {
            "now": now,
            "ids": [c.delivery_id for c in claims],
            "leases": [c.lease for c in claims],
        }
        async with transaction(self._engine) as conn:
            await conn.execute(_RELEASE, params)


def _record_columns(results: Sequence[AttemptResult], now: datetime) -> dict[str, object]:
    return {
        "now": now,
        "ids": [r.claim.delivery_id for r in results],
        "endpoints": [r.claim.endpoint_id for r in results],
        "at": [r.attempted_at for r in results],
        "codes": [r.status_code for r in results],
        "latencies": [r.latency_ms for r in results],
        "errors": [r.error for r in results],
        "snippets": [r.response_snippet for r in results],
        "leases": [r.claim.lease for r in results],
        "statuses": [r.outcome.status for r in results],
        "next": [r.outcome.next_attempt_at for r in results],
    }
