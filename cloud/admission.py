"""Admission of /v1 requests, before any of them takes a worker thread.

In order: who calls (its key, checked against the registry; without a known key, its
client address), a token from that caller's bucket (429), 401 for a missing or unknown
key, then one of the caller's `key_concurrency` slots (the request waits its turn in the
event loop, holding no thread, for at most the time budget; then 429). The admitted
request carries its `Principal` and its `RequestBudget` (cloud.budget) in its state.

So fake keys are limited per address like requests without a key, and one key flooding
costly requests occupies at most `key_concurrency` of the server's worker threads.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque

from cloud.access import Context, identify
from cloud.budget import RequestBudget
from cloud.problems import ApiProblem, problem_response
from cloud.ratelimit import TokenBuckets
from cloud.security import ANONYMOUS_ADMIN


class CallerSlots:
    """At most `per_caller` requests of one caller at once; later ones queue, first come
    first served. Event-loop only (not thread-safe); memory is freed as callers go idle."""

    def __init__(self, per_caller: int, max_waiting: int = 1000):
        self.per_caller, self.max_waiting = max(1, per_caller), max_waiting
        self._busy: dict[str, int] = {}
        self._queues: dict[str, deque[asyncio.Future]] = {}

    def busy(self, caller: str) -> int:
        return self._busy.get(caller, 0)

    async def acquire(self, caller: str, timeout: float | None) -> bool:
        """Take a slot, waiting up to `timeout` seconds (None: as long as it takes); False when
        none came in time, or too many already wait."""
        queue = self._queues.get(caller)
        if self.busy(caller) < self.per_caller and not queue:
            self._busy[caller] = self.busy(caller) + 1
            return True
        if queue is not None and len(queue) >= self.max_waiting:
            return False
        turn = asyncio.get_running_loop().create_future()
        self._queues.setdefault(caller, deque()).append(turn)
        try:
            await asyncio.wait_for(turn, timeout)
        except BaseException as exc:
            if turn.done() and not turn.cancelled():
                self.release(caller)  # handed a slot just as this one gave up: pass it on
            else:
                turn.cancel()
                self._forget(caller, turn)
            if isinstance(exc, TimeoutError):
                return False
            raise
        return True  # release() handed its slot over

    def release(self, caller: str) -> None:
        queue = self._queues.get(caller)
        while queue:
            turn = queue.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot goes to the next in line; the busy count stays
                if not queue:
                    del self._queues[caller]
                return
        self._queues.pop(caller, None)
        self._busy[caller] -= 1
        if not self._busy[caller]:
            del self._busy[caller]

    def _forget(self, caller: str, turn: asyncio.Future) -> None:
        queue = self._queues.get(caller)
        if queue is not None and turn in queue:
            queue.remove(turn)
            if not queue:
                del self._queues[caller]


class AdmissionMiddleware:
    """ASGI middleware: admits requests under `prefix` (see the module docstring)."""

    def __init__(self, app, context: Context, buckets: TokenBuckets | None, slots: CallerSlots, prefix: str = "/v1"):
        self.app, self.context, self.buckets, self.slots, self.prefix = app, context, buckets, slots, prefix

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix) or scope["method"] == "OPTIONS":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            principal, refusal = identify(self.context, headers), None
        except ApiProblem as exc:
            principal, refusal = None, exc
        if principal is not None and principal is not ANONYMOUS_ADMIN:
            caller, who = f"key:{principal.key_id}", "this key"
        else:
            caller, who = f"addr:{(scope.get('client') or ('unknown', 0))[0]}", "this address"
        if self.buckets is not None:
            wait = self.buckets.take(caller)
            if wait > 0:
                retry = max(1, math.ceil(wait))
                return await self._refuse(scope, receive, send, ApiProblem(
                    429, "Too many requests",
                    f"{who} may make {self.buckets.per_s:g} requests per second (bursts of "
                    f"{self.buckets.burst}, costly requests count more); retry in {retry} s",
                    {"Retry-After": str(retry)}))
        if refusal is not None:
            return await self._refuse(scope, receive, send, refusal)
        limits = self.context.limits
        if not await self.slots.acquire(caller, limits.budget_s if limits.budget_s > 0 else None):
            return await self._refuse(scope, receive, send, ApiProblem(
                429, "Too many requests at once",
                f"{who} has {self.slots.per_caller} requests being answered and more waiting; "
                "retry once they are done", {"Retry-After": "1"}))
        state = scope.setdefault("state", {})
        state["principal"] = principal
        state["budget"] = RequestBudget(caller, limits, self.buckets)
        try:
            await self.app(scope, receive, send)
        finally:
            self.slots.release(caller)

    @staticmethod
    async def _refuse(scope, receive, send, problem: ApiProblem):
        response = problem_response(problem.status, problem.title, problem.detail, scope["path"], problem.headers)
        await response(scope, receive, send)
