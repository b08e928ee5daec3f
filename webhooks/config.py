"""How one dispatcher delivers: plain values, built from the settings by `autostamp.wiring`."""

from __future__ import annotations

from dataclasses import dataclass

from ledger.sealing import Keyring
from webhooks.retries import DeliverySchedule
from webhooks.urls import NetworkPolicy


@dataclass(frozen=True, kw_only=True)
class DeliveryConfig:
    """The retry schedule, timeouts, concurrency and lease of one dispatcher, and the keys
    that open the webhook secrets it signs with."""

    schedule: DeliverySchedule
    connect_timeout_s: float
    read_timeout_s: float
    # The deadline of a whole attempt, however slowly the receiver answers.
    request_timeout_s: float
    # Public addresses, and the networks an operator allowed (loopback, a private range).
    networks: NetworkPolicy
    concurrency: int
    concurrency_per_endpoint: int
    poll_interval_s: float
    lease_s: float
    # An endpoint failing without a success for longer than this is disabled; 0: never.
    disable_after_s: float
    keyring: Keyring

    def timeouts(self) -> dict[str, float]:
        """The per-request timeouts, as httpx's `timeout` request extension carries them."""
        return {
            "connect": self.connect_timeout_s,
            "read": self.read_timeout_s,
            "write": self.request_timeout_s,
            "pool": self.request_timeout_s,
        }
