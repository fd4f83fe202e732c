"""Rate limiting per API key: a token bucket per key, in memory, answered with 429.

Each key (or, for requests without one, each client address) has a bucket of `burst`
tokens refilled at `per_s` tokens a second; a request takes one token. An empty bucket
gives 429 with `Retry-After`, the seconds until a token is back.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from boucle.registry import hash_key
from cloud.problems import problem_response


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

    def take(self, caller: str) -> float:
        """Take a token for `caller`: 0.0 when granted, else the seconds to wait."""
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(caller)
            if bucket is None:
                if len(self._buckets) >= self.max_callers:
                    self._forget_full(now)
                bucket = self._buckets[caller] = Bucket(float(self.burst), now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.per_s)
            bucket.updated = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / self.per_s

    def _forget_full(self, now: float) -> None:
        # a bucket that has refilled is the same as a new one
        for caller, b in list(self._buckets.items()):
            if b.tokens + (now - b.updated) * self.per_s >= self.burst:
                del self._buckets[caller]
        if len(self._buckets) >= self.max_callers:
            self._buckets.clear()


def presented_key(headers: dict[str, str]) -> str | None:
    """The API key of a request: `X-API-Key`, or `Authorization: Bearer <key>`."""
    key = headers.get("x-api-key")
    auth = headers.get("authorization", "")
    if not key and auth.lower().startswith("bearer "):
        key = auth[7:].strip()
    return key or None


class RateLimitMiddleware:
    """ASGI middleware: rate-limits requests under `prefix` by key (hashed) or client address."""

    def __init__(self, app, buckets: TokenBuckets, prefix: str = "/v1"):
        self.app, self.buckets, self.prefix = app, buckets, prefix

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix) or scope["method"] == "OPTIONS":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        key = presented_key(headers)
        client = scope.get("client") or ("unknown", 0)
        caller = "key:" + hash_key(key) if key else f"addr:{client[0]}"
        wait = self.buckets.take(caller)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            response = problem_response(
                429, "Too many requests",
                f"this key may make {self.buckets.per_s:g} requests per second "
                f"(bursts of {self.buckets.burst}); retry in {retry} s",
                scope["path"], {"Retry-After": str(retry)})
            return await response(scope, receive, send)
        return await self.app(scope, receive, send)
