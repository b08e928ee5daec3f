"""One attempt of one delivery: sign with the attempt's time, POST, keep the start of the answer."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import httpx

from ledger.errors import UnsafeUrl
from webhooks.config import DeliveryConfig
from webhooks.retries import DeliverySchedule, assess_attempt, retry_after_s
from webhooks.signing import sign, signing_secrets
from webhooks.store import AttemptResult, Claim
from webhooks.transport import USER_AGENT
from webhooks.urls import NetworkPolicy, check_form

log = logging.getLogger(__name__)

SNIPPET_BYTES = 1024
ERROR_CHARS = 500


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Reply:
    status_code: int | None = None
    retry_after: str | None = None
    snippet: str | None = None
    error: str | None = None


def _text(raw: str) -> str:
    # PostgreSQL text cannot hold NUL, and a receiver may send anything.
    return raw.replace("\x00", "\ufffd")


def _describe(exc: BaseException) -> str:
    # httpx-aiohttp re-raises aiohttp's errors as httpx ones; the original says more.
    cause = exc.__cause__ if isinstance(exc, httpx.HTTPError) and exc.__cause__ else exc
    return _text(f"{type(cause).__name__}: {cause}")[:ERROR_CHARS]


async def _read_snippet(response: httpx.Response, reply: _Reply) -> None:
    received = b""
    async for chunk in response.aiter_raw():
        received += chunk
        if len(received) >= SNIPPET_BYTES:
            break
    reply.snippet = _text(received[:SNIPPET_BYTES].decode(errors="replace"))


@dataclass(frozen=True)
class Sender:
    """Makes attempts: never follows a redirect, never outlives the deadline, never raises."""

    transport: httpx.AsyncBaseTransport
    schedule: DeliverySchedule
    deadline_s: float
    timeouts: dict[str, float]
    networks: NetworkPolicy
    clock: Callable[[], datetime] = utc_now
    rand: Callable[[], float] = random.random

    @classmethod
    def from_config(
        cls,
        transport: httpx.AsyncBaseTransport,
        config: DeliveryConfig,
        clock: Callable[[], datetime] = utc_now,
    ) -> Sender:
        return cls(
            transport,
            config.schedule,
            config.request_timeout_s,
            config.timeouts(),
            config.networks,
            clock,
        )

    async def send(self, claim: Claim) -> AttemptResult:
        attempted_at = self.clock()
        started = time.monotonic()
        reply = await self._post(claim, attempted_at)
        latency_ms = round((time.monotonic() - started) * 1000)
        now = self.clock()
        outcome = assess_attempt(
            self.schedule,
            status_code=reply.status_code,
            retry_after=retry_after_s(reply.retry_after, now),
            attempts_made=claim.attempt,
            now=now,
            rand=self.rand(),
        )
        return AttemptResult(
            claim, attempted_at, reply.status_code, latency_ms, reply.error, reply.snippet, outcome
        )

    def _headers(self, claim: Claim, attempted_at: datetime) -> dict[str, str]:
        secrets = signing_secrets(
            claim.secret, claim.previous_secret, claim.previous_secret_expires_at, attempted_at
        )
        signed = sign(claim.message_id, attempted_at, claim.body, secrets)
        return signed | {"content-type": "application/json", "user-agent": USER_AGENT}

    async def _post(self, claim: Claim, attempted_at: datetime) -> _Reply:
        reply = _Reply()
        try:
            async with asyncio.timeout(self.deadline_s):
                # The transport checks the addresses a name resolves to; an address is checked here.
                target = check_form(claim.url, policy=self.networks)
                request = httpx.Request(
                    "POST",
                    target.url,
                    content=claim.body,
                    headers=self._headers(claim, attempted_at),
                    extensions={"timeout": self.timeouts},
                )
                response = await self.transport.handle_async_request(request)
                try:
                    reply.status_code = response.status_code
                    reply.retry_after = response.headers.get("retry-after")
                    await _read_snippet(response, reply)
                finally:
                    await response.aclose()
        except TimeoutError:
            reply.error = f"no complete answer within {self.deadline_s:g}s"
        except UnsafeUrl as exc:
            reply.error = _text(f"refused: {exc.reason}")[:ERROR_CHARS]
        except (httpx.HTTPError, aiohttp.ClientError, OSError) as exc:
            reply.error = _describe(exc)
        except Exception as exc:
            # Whatever a receiver does must end as a failed attempt, never stop the dispatcher.
            log.exception("unexpected error posting webhook %s", claim.message_id)
            reply.error = _describe(exc)
        return reply
