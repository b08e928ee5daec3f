"""Failed authentications, counted per client address in memory, refused before any lookup.

A well-formed key that is not in the ledger costs a database lookup to find out. Each client
address has a bucket of `per_minute` failures, refilled continuously; an address that spent
it is answered 429 at once, without reading its key, until a failure's worth has refilled.
Each API process counts on its own, so a flood spread over `n` processes gets `n` buckets:
still a bounded cost, and none of it in the database.

The address is the TCP peer's, or, from a proxy listed in AUTOSTAMP_API_TRUSTED_PROXIES, the
client it forwarded for (`publisher_api.client_address`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ledger.errors import AutostampError

MAX_ADDRESSES = 10_000
"""Addresses remembered at once; the longest-quiet one is forgotten first (its bucket full)."""


class TooManyFailedAuthentications(AutostampError):
    """The client address failed to authenticate too often; `retry_after_s` says when to retry."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            f"too many failed authentications from this address; retry in {retry_after_s}s"
        )
        self.retry_after_s = retry_after_s


@dataclass
class _Bucket:
    failures: float  # spent, out of `per_minute`, as of `at`
    at: float


class FailedAuthentications:
    """Per-address buckets of failed authentications: `per_minute` of them, refilled evenly."""

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float],
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._max_addresses = max_addresses
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def check(self, address: str) -> None:
        """Raise `TooManyFailedAuthentications` if `address` has no failure left to spend."""
        bucket = self._buckets.get(address)
        if bucket is None:
            return
        spent = self._refilled(bucket)
        if spent > self.per_minute - 1:
            wait = (spent - (self.per_minute - 1)) * 60.0 / self.per_minute
            raise TooManyFailedAuthentications(max(1, math.ceil(wait)))

    def failed(self, address: str) -> None:
        """Count one failed authentication from `address`."""
        bucket = self._buckets.pop(address, None)
        now = self._clock()
        spent = 0.0 if bucket is None else self._refilled(bucket)
        self._buckets[address] = _Bucket(min(spent + 1, self.per_minute), now)
        while len(self._buckets) > self._max_addresses:
            self._buckets.popitem(last=False)

    def _refilled(self, bucket: _Bucket) -> float:
        elapsed = max(0.0, self._clock() - bucket.at)
        return max(0.0, bucket.failures - elapsed * self.per_minute / 60.0)
