"""Per-key rate limiting: a token bucket per key, in this process's memory.

The same buckets, keyed by client address, limit failed authentications (`AppState.strangers`):
an address over its budget is answered 429 before its key is even looked up.

Each key refills at its requests-per-minute (its own `rate_limit_per_minute`, else the setting) and may
burst up to `rate_limit_burst` requests. With several uvicorn workers every worker keeps its own
buckets, so `assay serve` gives each worker an equal share of the rate: the whole server never lets a
key exceed its limit, at the price of a key being limited a little early when its requests land
unevenly on the workers.
"""

from __future__ import annotations

import math
import time


class RateLimiter:
    MAX_KEYS = 100_000

    def __init__(self, per_minute: int, burst: int, share: float = 1.0) -> None:
        self.per_minute = per_minute
        self.burst = burst
        self.share = share
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated)

    def check(self, key: str, per_minute: int | None = None) -> float | None:
        """Take one token for `key`; None when allowed, else seconds until a token is available."""
        rate = (per_minute or self.per_minute) * self.share / 60.0
        capacity = max(1.0, min(self.burst, (per_minute or self.per_minute)) * self.share)
        now = time.monotonic()
        tokens, updated = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - updated) * rate)
        if tokens >= 1.0:
            if len(self._buckets) >= self.MAX_KEYS:
                self._buckets.clear()
            self._buckets[key] = (tokens - 1.0, now)
            return None
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / rate

    def peek(self, key: str, per_minute: int | None = None) -> float | None:
        """Like `check`, without taking a token: None while `key` has one left, else the wait."""
        rate = (per_minute or self.per_minute) * self.share / 60.0
        bucket = self._buckets.get(key)
        if bucket is None:
            return None
        tokens, updated = bucket
        tokens += (time.monotonic() - updated) * rate
        return None if tokens >= 1.0 else (1.0 - tokens) / rate

    @staticmethod
    def retry_after(seconds: float) -> str:
        return str(max(1, math.ceil(seconds)))
