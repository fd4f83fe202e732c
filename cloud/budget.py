"""What one request may cost: estimated before it runs, charged to its key, bounded in time.

A request's cost is counted in device-steps: the devices of its scope times its steps (a
series' steps; for an indicator set, FIWARE answer, pooling or symbiosis, the started
30-day months of its period, since the data comes in month packs). A comparison adds up
its sets. Over `max_request_cost` the request is refused (422, saying how to shrink it).
A computed answer takes ceil(cost / cost_per_token) tokens from its key's bucket (one is
already taken on arrival; a cached answer takes no more). A series or comparison that has
computed for `request_budget_s` seconds of CPU time stops (503): CPU time of the thread
doing the work, so that time lost to other requests (the GIL, a busy machine) does not
count against it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from boucle.registry import Registry
from cloud.indicators import Period, Scope
from cloud.problems import ApiProblem
from cloud.ratelimit import TokenBuckets

MONTH_S = 30 * 86400


@dataclass(frozen=True)
class Cost:
    """Device-steps, with what they are made of (for the refusal's detail)."""

    devices: int
    steps: int
    unit: str  # "steps" (a series) or "months" (indicator sets and the like)

    @property
    def units(self) -> int:
        return self.devices * self.steps

    def __add__(self, other: Cost) -> Cost:
        # a comparison's sets share their period: the months are the same, the devices add up
        return Cost(self.devices + other.devices, max(self.steps, other.steps), self.unit)


def scope_devices(registry: Registry, scope: Scope) -> int:
    """Devices of a site, a territory or several territories (at least 1: a step costs something)."""
    if scope.kind == "site":
        n = sum(len(registry.devices_of_site(s)) for s in scope.ids)
    else:
        n = sum(len(registry.devices_of(t)) for t in scope.ids)
    return max(1, n)


def series_cost(registry: Registry, scope: Scope, period: Period, step_s: int) -> Cost:
    return Cost(scope_devices(registry, scope), math.ceil(period.seconds / step_s), "steps")


def period_cost(registry: Registry, scope: Scope, period: Period) -> Cost:
    """An indicator set, FIWARE answer, pooling or symbiosis: devices × started 30-day months."""
    return Cost(scope_devices(registry, scope), max(1, math.ceil(period.seconds / MONTH_S)), "months")


@dataclass(frozen=True)
class Limits:
    max_cost: int
    cost_per_token: int
    budget_s: float


@dataclass
class RequestBudget:
    """One admitted request's allowance: its caller's bucket, the cost ceiling, its time budget."""

    caller: str
    limits: Limits
    buckets: TokenBuckets | None = None  # None: no rate limit
    clock: Callable[[], float] = time.thread_time  # read in the thread that computes
    started: float | None = None  # the clock at the first check_time

    def check_cost(self, cost: Cost) -> Cost:
        """`cost`, or 422 when it is over the ceiling, saying how to bring it under."""
        if cost.units <= self.limits.max_cost:
            return cost
        if cost.unit == "steps":
            factor = math.ceil(cost.units / self.limits.max_cost)
            how = f"a step at least {factor}× longer, a shorter period, or a smaller scope"
        else:
            how = "a shorter period or fewer territories"
        raise ApiProblem(422, "Request too costly",
                         f"this asks for {cost.steps:,} {cost.unit} × {cost.devices:,} devices = "
                         f"{cost.units:,} device-steps; one request may ask for at most "
                         f"{self.limits.max_cost:,}: ask for {how}")

    def tokens(self, cost: Cost) -> int:
        burst = self.buckets.burst if self.buckets else 1
        return min(burst, max(1, math.ceil(cost.units / self.limits.cost_per_token)))

    def charge(self, cost: Cost) -> None:
        """Take the computation's tokens (beyond the one taken on arrival); 429 when they are not there."""
        if self.buckets is None:
            return
        extra = self.tokens(cost) - 1
        wait = self.buckets.take(self.caller, extra) if extra > 0 else 0.0
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise ApiProblem(429, "Too many requests",
                             f"this answer costs {extra + 1} tokens ({cost.units:,} device-steps, "
                             f"{self.limits.cost_per_token:,} a token) and this key has fewer left; "
                             f"retry in {retry} s, or ask for less (a longer step, a shorter period)",
                             {"Retry-After": str(retry)})

    def check_time(self) -> None:
        """503 once the request has computed for longer than its budget (called before it
        computes, then between steps or sets, all in the one thread of the request)."""
        now = self.clock()
        if self.started is None:
            self.started = now
        if 0 < self.limits.budget_s < now - self.started:
            raise ApiProblem(503, "Time budget exceeded",
                             f"this request computed for more than {self.limits.budget_s:g} s of CPU time "
                             "and was stopped; ask for less (a longer step, a shorter period, fewer "
                             "territories)")
