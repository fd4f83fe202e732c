"""The month-pack data path (cloud.indicators.packs) against windows and raw readings.

Five weeks of readings of a small territory (a Fablab with PV and a machine, an office,
a scale bin, a fill-only bin) around February 2026; windows and packs recomputed by the
gateway's own `recompute_windows`; a period with partial months at both edges.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from boucle.protocol import Reading
from boucle.storage.sqlite import SQLiteStore
from cloud.indicators import Period, Scope, compute_indicators
from cloud.indicators.packs import load_packs
from cloud.indicators.source import load_series
from cloud.indicators.windows import load_windows
from gateway.month_packs import month_pack, months
from gateway.service import recompute_windows
from tests.indicators.builders import registry, utc

REG = registry("""
[[sites]]
id = "lab"
name = "Lab"
territory = "town"
kind = "fablab"
location = [45.77, 4.77]
opening_hours = "Mo-Sa 09:00-19:00"

[[sites]]
id = "office"
name = "Office"
territory = "town"
kind = "office"
location = [45.771, 4.771]
opening_hours = "Mo-Fr 08:00-18:00"

[[devices]]
id = "lab-grid"
site = "lab"
kind = "energy"
channel = "grid_import"
interval_s = 300
rated_power_w = 40000

[[devices]]
id = "lab-pv"
site = "lab"
kind = "energy"
channel = "pv_production"
interval_s = 300
rated_power_w = 9000

[[devices]]
id = "lab-laser"
site = "lab"
kind = "energy"
channel = "load"
interval_s = 300
rated_power_w = 3000

[[devices]]
id = "office-grid"
site = "office"
kind = "energy"
channel = "grid_import"
interval_s = 300
rated_power_w = 20000

[[devices]]
id = "office-scale"
site = "office"
kind = "waste"
stream = "packaging"
interval_s = 600
capacity_kg = 60
profile = "waste-scale"

[[devices]]
id = "office-fill"
site = "office"
kind = "waste"
stream = "residual"
interval_s = 600
capacity_l = 240
""")
DATA = (utc("2026-01-28T00:00"), utc("2026-03-04T00:00"))
PERIOD = Period(utc("2026-01-30T13:07") + 11, utc("2026-03-02T17:52") - 5)
TOWN = Scope("territory", ("town",))


def _power(device: str, ts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    hour = (ts % 86400) / 3600
    if device == "lab-pv":
        return np.clip(np.sin((hour - 6) / 12 * math.pi), 0, None) * 6000 * rng.uniform(0.6, 1, ts.size)
    if device == "lab-laser":
        return np.where(rng.random(ts.size) < 0.25, 2500.0, 5.0)
    base = 4000 if device == "lab-grid" else 1500
    return base + 8000 * ((hour > 8) & (hour < 18)) * rng.uniform(0.3, 1, ts.size)


def _readings(rng: np.random.Generator) -> list[Reading]:
    out = []
    for d in REG.devices:
        ts = np.arange(DATA[0], DATA[1], d.interval_s)
        ts = ts[rng.random(ts.size) > 0.02]  # a few lost readings
        if d.kind == "energy":
            wh = np.floor(np.cumsum(_power(d.id, ts, rng) * d.interval_s / 3600))
            if d.id == "office-grid":  # a counter reset on the 10th of February
                wh[ts >= utc("2026-02-10T04:00")] -= wh[ts >= utc("2026-02-10T04:00")][0]
            values = [{"energy_wh": int(v)} for v in wh]
        else:
            level, rows = 0.0, []
            for t in ts:
                level += rng.exponential(60.0) if rng.random() < 0.3 else 0.0
                if level > (50_000 if d.stream == "packaging" else 45_000) or (t % (4 * 86400) == 0 and level > 20_000):
                    level = 0.0  # emptied
                if d.id == "office-scale":
                    rows.append({"weight_g": int(level + rng.normal(0, 15))})
                else:
                    rows.append({"fill_pct": float(np.clip(level / 50_000 * 100 + rng.normal(0, 0.8), 0, 100))})
            values = rows
        out += [Reading(d.id, 1, i, int(t), v) for i, (t, v) in enumerate(zip(ts, values))]
    return out


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    store = SQLiteStore(tmp_path_factory.mktemp("packs") / "x.db")
    readings = _readings(np.random.default_rng(5))
    store.write_readings(readings, received=0.0)
    for d in REG.devices:
        mine = [r.ts for r in readings if r.device == d.id]
        # the aggregate stage, as after a backfill: one dirty span per week
        for lo in range(DATA[0], DATA[1], 7 * 86400):
            inside = [t for t in mine if lo <= t < lo + 7 * 86400]
            assert recompute_windows(store, d.id, inside[0], inside[-1], d.rated_power_w)
    yield store
    store.close()


@pytest.fixture(scope="module")
def results(stored):
    return {name: {v.id: v for v in compute_indicators(stored, REG, TOWN, PERIOD, loader=loader)}
            for name, loader in [("raw", load_series), ("windows", load_windows), ("packs", load_packs)]}


def test_the_gateway_keeps_a_pack_per_device_month(stored):
    packs = stored.month_packs([d.id for d in REG.devices], months(*DATA)[0], DATA[1])
    assert {(p.device, p.month) for p in packs} == {
        (d.id, m) for d in REG.devices for m in months(DATA[0], DATA[1])}
    # a pack is its month's windows, recomputed: the same as packing the windows again
    (feb,) = [p for p in packs if p.device == "lab-grid" and p.month == utc("2026-02-01T00:00")]
    assert feb == month_pack("lab-grid", feb.month, stored.windows(["lab-grid"], "15m", feb.month,
                                                                     utc("2026-03-01T00:00")))


def test_packs_serve_the_whole_month_and_windows_the_edges(stored):
    series = load_packs(stored, REG.devices, PERIOD)
    assert all(s.rollup for s in series.values())
    grid = series["lab-grid"]
    # day points inside February, 15-min slots only on demand
    assert np.isin(utc("2026-02-15T00:00"), grid.times) and not np.isin(utc("2026-02-15T00:15"), grid.times)
    assert np.isin(utc("2026-02-15T00:15"), grid.refine().times)


@pytest.mark.parametrize("indicator", ["energy.consumed", "energy.pv_produced", "energy.ghg", "energy.intensity",
                                       "data.coverage"])
def test_sums_are_exact(results, indicator):
    raw, packs = results["raw"][indicator], results["packs"][indicator]
    assert raw.value
    assert packs.value == pytest.approx(raw.value, rel=1e-12)
    assert packs.coverage == raw.coverage


@pytest.mark.parametrize("indicator", ["energy.peak_demand", "energy.base_load", "energy.load_factor",
                                       "energy.off_hours_share", "energy.self_consumption",
                                       "energy.self_sufficiency", "energy.pooling_gain",
                                       "circular.shared_equipment_use", "waste.generated",
                                       "waste.fill_at_collection", "waste.avoidable_collections",
                                       "waste.overflows", "waste.sorting_rate"])
def test_packs_give_what_windows_give(results, indicator):
    windows, packs = results["windows"][indicator], results["packs"][indicator]
    assert windows.value is not None
    assert packs.value == pytest.approx(windows.value, rel=1e-6, abs=1e-9)
    assert packs.coverage == windows.coverage


def test_profiles_and_bins_stay_close_to_raw(results):
    raw, packs = results["raw"], results["packs"]
    for i in ["energy.peak_demand", "energy.base_load", "energy.load_factor", "energy.off_hours_share",
              "energy.self_consumption", "energy.self_sufficiency"]:
        assert packs[i].value == pytest.approx(raw[i].value, rel=0.05, abs=0.5), i
    assert packs["circular.shared_equipment_use"].value == pytest.approx(
        raw["circular.shared_equipment_use"].value, rel=0.4)
    assert packs["waste.generated"].value == pytest.approx(raw["waste.generated"].value, abs=0.1 * 2 * 2)
    assert packs["waste.fill_at_collection"].breakdown["emptyings"] == raw["waste.fill_at_collection"].breakdown["emptyings"]
    assert packs["waste.fill_at_collection"].value == pytest.approx(raw["waste.fill_at_collection"].value, abs=2.0)


def test_packs_on_influxdb_round_trip_through_the_gateway_path(influxdb):
    from boucle.storage import open_store

    store = open_store(f"influx+http://127.0.0.1:{influxdb.port}/packs")
    try:
        t0 = utc("2026-01-31T23:00")
        store.write_readings([Reading("lab-grid", 1, i, t0 + 60 * i, {"energy_wh": 1000 + 40 * i})
                              for i in range(120)], received=0.0)
        assert recompute_windows(store, "lab-grid", t0, t0 + 60 * 119, 40000)
        jan, feb = utc("2026-01-01T00:00"), utc("2026-02-01T00:00")
        packs = store.month_packs(["lab-grid", "office-grid"], jan, utc("2026-03-01T00:00"))
        assert [p.month for p in packs] == [jan, feb]
        for p in packs:
            assert p == month_pack("lab-grid", p.month, store.windows(["lab-grid"], "15m", p.month, p.month + 31 * 86400))
        assert np.frombuffer(packs[1].amount, dtype=np.float64).sum() == 40 * 60
        assert store.month_packs(["lab-grid"], jan, feb, quarters=False)[0].quarter_wh == b""
    finally:
        store.close()


def test_a_series_from_packs_sums_to_the_period(stored, results):
    from cloud.indicators import indicator_series

    steps = indicator_series(stored, REG, TOWN, "energy.consumed", PERIOD, 10 * 86400)  # default: packs
    assert len(steps) == 4
    assert sum(s.value for s in steps) == pytest.approx(results["raw"]["energy.consumed"].value, rel=1e-12)


def test_a_late_reading_rewrites_its_months_pack(store):
    t0 = utc("2026-02-28T23:00")  # the span crosses into March: two packs
    on_time = [Reading("lab-grid", 1, s, t0 + 60 * s, {"energy_wh": 10 * s}) for s in range(120) if s != 30]
    store.write_readings(on_time, received=0.0)
    assert recompute_windows(store, "lab-grid", t0, t0 + 60 * 119, 40000)
    feb, mar = utc("2026-02-01T00:00"), utc("2026-03-01T00:00")

    def readings_and_wh():
        packs = store.month_packs(["lab-grid"], feb, utc("2026-04-01T00:00"))
        assert [p.month for p in packs] == [feb, mar]
        return ([int(np.frombuffer(p.readings, dtype=np.int32).sum()) for p in packs],
                [float(np.frombuffer(p.amount).sum()) for p in packs])

    assert readings_and_wh() == ([59, 60], [590.0, 600.0])
    store.write_readings([Reading("lab-grid", 1, 30, t0 + 1800, {"energy_wh": 300})], received=1.0)
    assert recompute_windows(store, "lab-grid", t0 + 1800, t0 + 1800, 40000)
    assert readings_and_wh() == ([60, 60], [590.0, 600.0])


LOCAL_PERIODS = [
    # February in Paris time: an hour of 31 January (its windows), 28 February but its last
    # hour (the day's pack less the windows of that hour)
    Period(utc("2026-01-31T23:00"), utc("2026-02-28T23:00")),
    # edges on quarter-hours that are not hours: 18 h 15 of a day, then 10 h 30
    Period(utc("2026-02-03T05:45"), utc("2026-02-25T10:30")),
]


@pytest.fixture(scope="module", params=LOCAL_PERIODS, ids=["paris-february", "quarter-hours"])
def local(request, stored):
    period = request.param
    return period, {name: {v.id: v for v in compute_indicators(stored, REG, TOWN, period, loader=loader)}
                    for name, loader in [("raw", load_series), ("windows", load_windows), ("packs", load_packs)]}


def test_partial_days_on_quarter_hours_come_from_packs(stored, local):
    period, _ = local
    series = load_packs(stored, REG.devices, period)
    grid = series["lab-grid"]
    assert grid.times[0] == period.start and grid.times[-1] == period.end
    profile = grid.refine()  # every slot of the period, edges included, from the packs
    assert profile.slots_wh is not None and profile.slots_wh.size == period.seconds // 900
    assert series["office-scale"].emptied is not None
    assert series["office-fill"].emptied is None  # fill-only bins: partial days from windows


@pytest.mark.parametrize("indicator", ["energy.consumed", "energy.pv_produced", "energy.ghg", "energy.intensity",
                                       "data.coverage"])
def test_partial_days_from_packs_keep_sums_exact(local, indicator):
    _, results = local
    raw, packs = results["raw"][indicator], results["packs"][indicator]
    assert raw.value
    assert packs.value == pytest.approx(raw.value, rel=1e-9)
    assert packs.coverage == raw.coverage
    if indicator == "data.coverage":
        assert packs.breakdown == raw.breakdown


def test_partial_days_from_packs_give_what_windows_give(local):
    _, results = local
    windows, packs, raw = results["windows"], results["packs"], results["raw"]
    for i, w in windows.items():
        assert packs[i].coverage == w.coverage, i
        if w.value is None:
            assert packs[i].value is None, i
            continue
        # the windows path spreads the first window's energy from the last reading before
        # the period (some of it falls outside); packs keep it inside its quarter-hour
        assert packs[i].value == pytest.approx(w.value, rel=1e-3, abs=1e-9), i
    for i in ["energy.peak_demand", "energy.base_load", "energy.load_factor", "energy.off_hours_share",
              "energy.self_consumption", "energy.self_sufficiency"]:
        assert packs[i].value == pytest.approx(raw[i].value, rel=0.05, abs=0.5), i
    assert packs["waste.generated"].value == pytest.approx(windows["waste.generated"].value, rel=1e-12)
    assert packs["waste.fill_at_collection"].breakdown == windows["waste.fill_at_collection"].breakdown


def test_an_edge_day_without_its_months_pack_goes_through_windows(stored):
    # local 1 January 2026 starts on 31 December 23:00 UTC: no December pack (no data then)
    period = Period(utc("2025-12-31T23:00"), utc("2026-02-14T23:00"))
    got = {name: {v.id: v for v in compute_indicators(stored, REG, TOWN, period, loader=loader)}
           for name, loader in [("raw", load_series), ("packs", load_packs)]}
    for i in ["energy.consumed", "energy.pv_produced", "data.coverage"]:
        assert got["raw"][i].value
        assert got["packs"][i].value == pytest.approx(got["raw"][i].value, rel=1e-9), i
        assert got["packs"][i].coverage == got["raw"][i].coverage, i
    assert got["packs"]["waste.generated"].value == pytest.approx(got["raw"]["waste.generated"].value, abs=0.4)
    assert got["packs"]["energy.peak_demand"].value == pytest.approx(got["raw"]["energy.peak_demand"].value, rel=0.05)
