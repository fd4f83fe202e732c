"""Rate limiting: a token bucket per caller (a key, or a client address), in memory.

Each caller has a bucket of `burst` tokens refilled at `per_s` tokens a second. A request
takes one on arrival (cloud.admission), a costly computation more (cloud.budget). An
empty bucket gives 429 with `Retry-After`, the seconds until the tokens are back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """Token buckets by caller. Thread-safe; bounded in memory (full buckets are forgotten)."""

    def __init__(self, per_s: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 max_callers: int = 10_000):
        self.per_s, self.burst, self.clock, self.max_callers = per_s, max(1, burst), clock, max_callers
        self._buckets: dict[str, Bucket] = {}
        self._lock = threading.Lock()

    def take(self, caller: str, tokens: int = 1) -> float:
        """Take `tokens` (at most the burst) for `caller`: 0.0 when granted, else the seconds
        until they are there (and none is taken)."""
        tokens = min(tokens, self.burst)
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(caller)
            if bucket is None:
                if len(self._buckets) >= self.max_callers:
                    self._forget_full(now)
                bucket = self._buckets[caller] = Bucket(float(self.burst), now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.per_s)
            bucket.updated = now
            if bucket.tokens >= tokens:
                bucket.tokens -= tokens
                return 0.0
            return (tokens - bucket.tokens) / self.per_s

    def _forget_full(self, now: float) -> None:
        # a bucket that has refilled is the same as a new one
        for caller, b in list(self._buckets.items()):
            if b.tokens + (now - b.updated) * self.per_s >= self.burst:
                del self._buckets[caller]
        if len(self._buckets) >= self.max_callers:
            self._buckets.clear()
