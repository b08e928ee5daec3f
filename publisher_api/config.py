"""The limits one API application enforces: plain values that `autostamp.wiring` builds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network

from ledger.sealing import Keyring


@dataclass(frozen=True, kw_only=True)
class IngestConfig:
    """The limits of `POST /ingest.v1/transactions`, and the keys that open signing secrets."""

    max_body_bytes: int
    max_items: int
    # Opens the sealed request-signing secrets of signed ingest keys.
    keyring: Keyring


@dataclass(frozen=True, kw_only=True)
class ConsoleConfig:
    """The console at /console: whether it is served, and its limits."""

    enabled: bool = True
    # The session cookie is sent over HTTPS only (browsers treat http://localhost as secure).
    secure_cookie: bool = True
    backtest_max_bytes: int = 64 * 1024 * 1024
    # The currency of an uploaded program that names none (AUTOSTAMP_DEFAULT_CURRENCY).
    default_currency: str | None = None


@dataclass(frozen=True, kw_only=True)
class ApiConfig:
    """Request limits, key trust, how long a rotated webhook secret keeps signing, and the
    keys that seal webhook secrets at rest."""

    max_body_bytes: int
    rate_limit_per_minute: int
    rate_limit_burst: int
    key_cache_s: float
    # Failed authentications one client address may make per minute before it is refused.
    failed_auth_per_minute: int
    # The proxies whose X-Forwarded-For names the client (`publisher_api.client_address`).
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    webhook_secret_grace: timedelta
    webhook_held_while_disabled: timedelta
    # Seals the webhook secrets the API creates and rotates.
    webhook_keyring: Keyring
    ingest: IngestConfig
    console: ConsoleConfig = ConsoleConfig()
