"""Bounded work per request and per key: cost ceiling, cost charged to the key's bucket,
turns per key, time budget; and a flood by one key leaves other keys answered."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from boucle.registry import RegistryFile
from boucle.storage.sqlite import SQLiteStore
from cloud.admission import CallerSlots
from cloud.budget import Cost, Limits, RequestBudget, series_cost
from cloud.indicators import Period, Scope, indicator_series, load_references
from cloud.problems import ApiProblem
from cloud.ratelimit import TokenBuckets
from tests.cloud.conftest import ADMIN, ECULLY, END, make_app
from tests.conftest import EXAMPLE_REGISTRY

SERIES = "/v1/territories/ecully/indicators/energy.pooling_gain/series"
TWENTY_YEARS = {"from": str(END - 20 * 366 * 86400 + 86400), "to": str(END)}


def series_params(steps: int, step_s: int) -> dict:
    return {"step": str(step_s), "from": str(END - steps * step_s), "to": str(END)}


def test_the_cost_of_a_series_is_steps_times_devices():
    registry = RegistryFile(EXAMPLE_REGISTRY).current()
    cost = series_cost(registry, Scope("territory", ("ecully",)), Period(END - 100 * 3600, END), 3600)
    assert (cost.steps, cost.devices) == (100, len(registry.devices_of("ecully"))) and cost.units == 100 * 17


def test_a_request_over_the_cost_ceiling_is_refused_saying_how_to_shrink_it(simulated_db):
    # the series of issue 20: 20 years of pooling gain at step=63300 (about 10,000 steps × 17 devices)
    with TestClient(make_app(simulated_db, max_request_cost=100_000)) as c:
        r = c.get(SERIES, params={**TWENTY_YEARS, "step": "63300"}, headers={"X-API-Key": ECULLY})
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
        body = r.json()
        assert body["title"] == "Request too costly"
        assert "9,990 steps × 17 devices = 169,830 device-steps" in body["detail"]
        assert "at most 100,000" in body["detail"] and "step at least 2× longer" in body["detail"]
        # the same period in weekly steps is within the ceiling
        r = c.get(SERIES, params={**TWENTY_YEARS, "step": "1w"}, headers={"X-API-Key": ECULLY})
        assert r.status_code == 200
    with TestClient(make_app(simulated_db, max_request_cost=10_000)) as c:
        # a comparison adds up its sets: the three territories (40 devices), each and combined,
        # over 20 years (244 started months) is 19,520 device-steps
        three = {"territories": "ecully,zi-meyzieu,cc-monts-lyonnais"}
        r = c.get("/v1/compare", params={**TWENTY_YEARS, **three}, headers={"X-API-Key": ADMIN})
        assert r.status_code == 422, r.text
        assert "244 months × 80 devices = 19,520" in r.json()["detail"]
        assert "shorter period or fewer territories" in r.json()["detail"]
        a_year = {"from": str(END - 365 * 86400), "to": str(END)}
        assert c.get("/v1/compare", params={**a_year, **three}, headers={"X-API-Key": ADMIN}).status_code == 200


def test_a_computed_answer_is_charged_by_its_cost_and_a_cached_one_is_not(simulated_db):
    # burst 10, no refill to speak of; 1,000 device-steps a token
    app = make_app(simulated_db, rate_limit_per_s=0.001, rate_limit_burst=10, cost_per_token=1000)
    h = {"X-API-Key": ECULLY}
    with TestClient(app) as c:
        costly = series_params(400, 3600)  # 400 steps × 17 devices = 7 tokens (6,800 device-steps)
        assert c.get(SERIES, params=costly, headers=h).status_code == 200
        r = c.get(SERIES, params=series_params(400, 3660), headers=h)  # another 7: 3 are left
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert "costs 7 tokens" in r.json()["detail"] and "6,800 device-steps" in r.json()["detail"]
        again = c.get(SERIES, params=costly, headers=h)  # cached: one token
        assert again.status_code == 200 and again.headers["x-cache"] == "hit"
        assert c.get("/v1/territories", headers={"X-API-Key": ADMIN}).status_code == 200  # other keys untouched


def test_a_series_over_its_time_budget_stops_between_steps(simulated_db):
    registry = RegistryFile(EXAMPLE_REGISTRY).current()
    ticks = iter(range(10**6))  # a CPU clock that advances one second per look
    budget = RequestBudget("key:test", Limits(10**9, 1, budget_s=5), clock=lambda: next(ticks))
    store = SQLiteStore(simulated_db)
    evaluated = []
    with pytest.raises(ApiProblem) as stopped:
        indicator_series(store, registry, Scope("territory", ("ecully",)), "energy.consumed",
                         Period(END - 9000 * 3600, END), 3600, load_references(),
                         each_step=lambda: (budget.check_time(), evaluated.append(1)))
    store.close()
    assert stopped.value.status == 503 and stopped.value.title == "Time budget exceeded"
    assert len(evaluated) == 6  # the clock read 0 to 5 s: 6 of 9,000 steps, then it stopped


def test_the_time_budget_answers_503_through_the_api(simulated_db):
    with TestClient(make_app(simulated_db, request_budget_s=0.001)) as c:
        r = c.get(SERIES, params=series_params(2000, 3600), headers={"X-API-Key": ECULLY})
        assert r.status_code == 503 and r.json()["title"] == "Time budget exceeded"
        assert "ask for less" in r.json()["detail"]


def test_each_caller_gets_its_turns_in_order():
    async def scenario():
        slots = CallerSlots(per_caller=2)
        assert await slots.acquire("a", 1) and await slots.acquire("a", 1)
        third = asyncio.create_task(slots.acquire("a", 5))
        fourth = asyncio.create_task(slots.acquire("a", 5))
        await asyncio.sleep(0.01)
        assert not third.done() and not fourth.done()  # "a" is at its two
        assert await slots.acquire("b", 0.01)  # another caller is not held up
        slots.release("a")
        assert await third and not fourth.done()  # first come, first served
        assert not await slots.acquire("a", 0.01)  # no turn within the timeout
        slots.release("a")
        assert await fourth
        for caller in ("a", "a", "b"):
            slots.release(caller)
        assert slots.busy("a") == slots.busy("b") == 0 and not slots._queues  # idle callers cost no memory

    asyncio.run(scenario())


def test_a_waiting_request_that_gives_up_passes_its_turn_on():
    async def scenario():
        slots = CallerSlots(per_caller=1)
        assert await slots.acquire("a", 1)
        gone = asyncio.create_task(slots.acquire("a", 5))
        await asyncio.sleep(0.01)
        gone.cancel()  # the client went away while waiting
        with pytest.raises(asyncio.CancelledError):
            await gone
        waiting = asyncio.create_task(slots.acquire("a", 5))
        await asyncio.sleep(0.01)
        slots.release("a")
        assert await waiting

    asyncio.run(scenario())


def test_tokens_of_a_cost_are_bounded_by_the_burst():
    budget = RequestBudget("k", Limits(10**9, 1000, 10), TokenBuckets(1.0, 60))
    assert [budget.tokens(Cost(d, 1, "steps")) for d in (1, 1000, 1001, 10**6)] == [1, 1, 2, 60]


def test_one_key_flooding_costly_requests_leaves_other_keys_answered(served):
    """Issue 20: 45 costly requests of one key took every worker thread and another key's
    /v1/territories waited 74.8 s. Rate limit out of the way: only the per-key turns act."""
    api = served(rate_limit_per_s=1000.0, rate_limit_burst=10_000, key_concurrency=4)
    flood_key, other_key = {"X-API-Key": ECULLY}, {"X-API-Key": ADMIN}
    with httpx.Client(base_url=api.url, timeout=300) as c:
        began = time.perf_counter()
        assert c.get(SERIES, params=series_params(400, 86400 - 60), headers=flood_key).status_code == 200
        alone_s = time.perf_counter() - began  # one costly request, nothing else running

    finished: list[tuple[float, int]] = []

    def costly(i: int) -> None:
        with httpx.Client(base_url=api.url, timeout=300) as c:  # a distinct step each: no cache hit
            r = c.get(SERIES, params=series_params(400, 86400 + 60 * i), headers=flood_key)
        finished.append((time.perf_counter(), r.status_code))

    flood = [threading.Thread(target=costly, args=(i,)) for i in range(45)]  # more than the 40 worker threads
    for t in flood:
        t.start()
    time.sleep(0.5)  # the flood is in
    began = time.perf_counter()
    cheap = httpx.get(f"{api.url}/v1/territories", headers=other_key, timeout=300)
    answered_at = time.perf_counter()
    done_by_then = sum(1 for at, _ in list(finished) if at <= answered_at)
    for t in flood:
        t.join()
    assert cheap.status_code == 200
    assert done_by_then < len(flood) // 4, done_by_then  # answered while the flood was still running
    # ...and it did not wait behind the flood: quicker than one costly request alone (ratio, same run)
    assert answered_at - began < 2 * alone_s, (answered_at - began, alone_s)
    # the flood itself: answered in turns, four at a time; what would wait past the time budget is 429
    statuses = [s for _, s in finished]
    assert len(statuses) == len(flood) and set(statuses) <= {200, 429} and statuses.count(200) >= 4
