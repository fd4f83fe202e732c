"""Water indicators on a hand-computed case (real SQLite, registry models): a Fablab's supply
meter over four local days, busy by day, dry on the first night, a 12 L/h leak after it.
Every value is the same from raw readings and from the gateway's rollups."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from boucle.storage.sqlite import SQLiteStore
from cloud.indicators import Period, Scope, compute_indicators, load_references
from cloud.indicators.references import References
from tests.indicators.builders import paris, registry, write
from tests.indicators.fleets import fill_as_the_gateway_does

SITES = """
[[sites]]
id = "lab"
territory = "town"
name = "Lab"
kind = "fablab"
location = [45.77, 4.77]
employees = 4

[[devices]]
id = "lab-water"
site = "lab"
kind = "water"
profile = "water-pulse"
rated_flow_m3_h = 2.5
"""
START = paris("2026-01-05T00:00")  # a Monday; no DST change in the four days
PERIOD = Period(START, START + 4 * 86400)
WATER = ["water.consumed", "water.per_capita", "water.night_flow", "water.leak_suspected"]
PARIS = ZoneInfo("Europe/Paris")


def litres_per_hour(ts: int) -> float:
    local = datetime.fromtimestamp(ts, PARIS)
    if 6 <= local.hour < 22:
        return 600.0
    return 0.0 if local.day == 5 else 12.0  # dry on Monday, then a leak


@pytest.fixture
def case(tmp_path):
    reg = registry(SITES)
    store = SQLiteStore(tmp_path / "water.db")
    rows, total = [], 0.0
    for i in range(4 * 1440 + 1):
        t = START + 60 * i
        rows.append((t, {"water_l": int(total), "flow_lpm": litres_per_hour(t) / 60}))
        total += litres_per_hour(t) / 60
    write(store, "lab-water", rows)
    readings = _stored(store)
    other = SQLiteStore(tmp_path / "rolled.db")
    fill_as_the_gateway_does(other, reg, readings, batches=4, seed=7)
    return reg, store, other


def _stored(store):
    from boucle.protocol import Reading
    return [Reading("lab-water", r.boot, r.seq, r.ts, r.values)
            for r in store.readings("lab-water", START, START + 5 * 86400, ["water_l", "flow_lpm"])]


def _values(store, reg, scope, references=None, raw=False):
    return {v.id: v for v in compute_indicators(store, reg, scope, PERIOD, WATER, references, raw=raw)}


def test_water_indicators_by_hand(case):
    reg, _, rolled = case
    town = _values(rolled, reg, Scope("territory", ("town",)))
    day, leak = 16 * 600, 8 * 12  # litres of a day's busy hours, of a leaking night's 8 quiet hours
    assert town["water.consumed"].value == pytest.approx((4 * day + 3 * leak) / 1000)
    assert town["water.consumed"].unit == "m³"
    assert town["water.per_capita"].value == pytest.approx((4 * day + 3 * leak) / 1000 / 4)  # 1000 inhabitants
    assert town["water.per_capita"].reference["average"] == 145
    assert town["water.per_capita"].caveats == ["only the sites with a water meter are counted"]
    # nights of Mon..Thu: minima 0, 12, 12, 12 L/h
    assert town["water.night_flow"].value == pytest.approx(9.0)
    assert town["water.night_flow"].breakdown == {"by_site": {"lab": 9.0}, "nights": {"lab": 4}}
    assert town["water.leak_suspected"].value == 1
    assert town["water.leak_suspected"].breakdown["sites"] == {"lab": {"nights_in_a_row": 3, "until": "2026-01-08"}}
    assert town["water.consumed"].coverage == 1.0
    site = _values(rolled, reg, Scope("site", ("lab",)))
    assert site["water.per_capita"].value == pytest.approx((4 * day + 3 * leak) / 4 / 4)
    assert site["water.per_capita"].unit == "L/employee/day"
    # four nights in a row needed: none
    refs = load_references()
    stricter = References({**refs.data, "thresholds": {**refs.data["thresholds"], "leak_nights": 4}})
    assert _values(rolled, reg, Scope("territory", ("town",)), stricter)["water.leak_suspected"].value == 0


def test_water_indicators_are_the_same_from_rollups_and_raw_readings(case):
    reg, raw_store, rolled = case
    for scope in (Scope("territory", ("town",)), Scope("site", ("lab",))):
        raw = {k: dataclasses.asdict(v) for k, v in _values(rolled, reg, scope, raw=True).items()}
        rolled_values = {k: dataclasses.asdict(v) for k, v in _values(rolled, reg, scope).items()}
        plain = {k: dataclasses.asdict(v) for k, v in _values(raw_store, reg, scope).items()}
        assert raw == rolled_values == plain
