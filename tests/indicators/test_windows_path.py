"""The windows data path (cloud.indicators.windows) against the raw-readings path.

Simulated data stored as the gateway stores it (windows recomputed after each hourly batch,
tests/indicators/conftest.py); a period whose edges cut quarter-hours, so both the windows
and the raw readings at the edges are read.
"""

from __future__ import annotations

import pytest

from boucle.storage.sqlite import SQLiteStore
from cloud.indicators import CATALOGUE, Period, Scope, compute_indicators, indicator_series
from cloud.indicators.source import load_series
from cloud.indicators.windows import load_windows
from gateway.service import recompute_windows
from tests.indicators.builders import counter, registry, utc, write
from tests.indicators.conftest import SIM_END, SIM_START

# edges inside quarter-hours, the first hour's readings as baselines
PERIOD = Period(SIM_START + 3600 + 7 * 60 + 13, SIM_END - 2 * 3600 - 11 * 60)
ALL = Scope("territories", ("ecully", "zi-meyzieu", "cc-monts-lyonnais"))

EXACT = ["energy.consumed", "energy.intensity", "energy.pv_produced", "energy.ghg",
         "data.coverage", "circular.symbiosis_matches"]
"""Sums of deltas and of readings: windows hold them exactly."""
MASS = ["waste.generated", "waste.per_capita", "waste.residual_per_capita", "waste.ghg",
        "waste.recycling_rate", "waste.landfill_rate", "waste.sorting_rate"]
"""Deposits: the gateway's hysteresis starts from its recompute span, the raw path's from the
period's baseline; each bin may differ by less than the 100 g band at each edge."""
PROFILE = ["energy.peak_demand", "energy.base_load", "energy.load_factor", "energy.off_hours_share",
           "energy.self_consumption", "energy.self_sufficiency", "energy.pooling_gain"]
"""15-min shapes: a window places its energy within itself instead of between readings."""
MACHINES = ["circular.shared_equipment_use"]
"""A window's mean power hides when the machine ran within it: an estimate (docs/indicators.md)."""
BINS = ["waste.fill_at_collection", "waste.avoidable_collections", "waste.overflows"]
"""Collection quality: emptyings at window resolution (fill-only bins: on windows' fill maxima)."""


def test_every_indicator_is_in_one_tolerance_class():
    assert sorted(EXACT + MASS + PROFILE + MACHINES + BINS) == sorted(CATALOGUE)


@pytest.fixture(scope="module")
def both(simulated):
    registry, store, _ = simulated
    raw = {v.id: v for v in compute_indicators(store, registry, ALL, PERIOD, loader=load_series)}
    rolled = {v.id: v for v in compute_indicators(store, registry, ALL, PERIOD, loader=load_windows)}
    return registry, raw, rolled


def test_windows_exist_for_the_simulated_fleet(simulated):
    registry, store, _ = simulated
    ids = [d.id for d in registry.devices]
    assert {w.device for w in store.windows(ids, "15m", PERIOD.start, PERIOD.end)} == set(ids)


@pytest.mark.parametrize("indicator", EXACT)
def test_sums_are_exact(both, indicator):
    _, raw, rolled = both
    assert raw[indicator].value is not None, indicator
    assert rolled[indicator].value == pytest.approx(raw[indicator].value, rel=1e-12, abs=1e-9)
    assert rolled[indicator].coverage == raw[indicator].coverage
    if indicator == "data.coverage":
        assert rolled[indicator].breakdown == raw[indicator].breakdown


def test_deposited_mass_differs_by_less_than_the_hysteresis_band(both):
    registry, raw, rolled = both
    bins = len([d for d in registry.devices if d.kind == "waste"])
    band_kg = 0.1 * bins * 2  # at most one band per bin at each edge
    assert rolled["waste.generated"].value == pytest.approx(raw["waste.generated"].value, abs=band_kg)
    for stream, kg in raw["waste.generated"].breakdown["by_stream"].items():
        assert rolled["waste.generated"].breakdown["by_stream"][stream] == pytest.approx(kg, abs=band_kg)
    for i in MASS[1:]:
        assert rolled[i].value == pytest.approx(raw[i].value, rel=0.01), i
        assert rolled[i].coverage == raw[i].coverage


@pytest.mark.parametrize("indicator", PROFILE)
def test_profiles_agree_within_five_percent(both, indicator):
    _, raw, rolled = both
    assert raw[indicator].value is not None, indicator
    assert rolled[indicator].value == pytest.approx(raw[indicator].value, rel=0.05, abs=0.5)
    assert rolled[indicator].coverage == raw[indicator].coverage


def test_machine_use_is_an_estimate_at_window_resolution(both):
    _, raw, rolled = both
    (i,) = MACHINES
    assert raw[i].value > 0
    # each window counts the share its energy needs at rated power: within 40% of the
    # reading-by-reading value on simulated machines (which draw less than rated)
    assert rolled[i].value == pytest.approx(raw[i].value, rel=0.4)
    assert rolled[i].coverage == raw[i].coverage


def test_collection_quality_agrees(both):
    _, raw, rolled = both
    assert raw["waste.fill_at_collection"].breakdown["emptyings"] > 0
    assert (rolled["waste.fill_at_collection"].breakdown["emptyings"]
            == raw["waste.fill_at_collection"].breakdown["emptyings"])
    assert rolled["waste.fill_at_collection"].value == pytest.approx(raw["waste.fill_at_collection"].value, abs=2.0)
    assert rolled["waste.avoidable_collections"].value == pytest.approx(
        raw["waste.avoidable_collections"].value, abs=100 / raw["waste.fill_at_collection"].breakdown["emptyings"])
    assert rolled["waste.overflows"].value == pytest.approx(raw["waste.overflows"].value, abs=1.0)


def test_windows_serve_the_default_within_a_month_and_steps_sum_to_the_period(simulated, both):
    registry, store, _ = simulated
    _, _, rolled = both
    default = {v.id: v.value for v in compute_indicators(store, registry, ALL, PERIOD)}
    assert default == {i: v.value for i, v in rolled.items()}
    steps = indicator_series(store, registry, ALL, "energy.consumed", PERIOD, 6 * 3600)
    assert sum(s.value for s in steps) == pytest.approx(rolled["energy.consumed"].value, rel=1e-12)


# --- fallback to raw readings ------------------------------------------------------------

REG = registry("""
[[sites]]
id = "site-s"
name = "S"
territory = "town"
kind = "office"
location = [45.77, 4.77]
floor_area_m2 = 100

[[devices]]
id = "met-1"
site = "site-s"
kind = "energy"
channel = "grid_import"
interval_s = 60
rated_power_w = 9000

[[devices]]
id = "met-2"
site = "site-s"
kind = "energy"
channel = "grid_import"
interval_s = 60
rated_power_w = 9000

[[devices]]
id = "bin-1"
site = "site-s"
kind = "waste"
stream = "packaging"
interval_s = 600
capacity_kg = 50
""")
T0 = utc("2026-01-05T00:00")
DAY = Period(T0 + 125, T0 + 86400 - 333)


def _fill_store(store: SQLiteStore) -> None:
    counter(store, "met-1", T0 - 60, 1200, 1442)
    counter(store, "met-2", T0 - 60, 300, 1442)
    weights = [(T0 + 600 * i, {"weight_g": (i % 40) * 900}) for i in range(144)]
    write(store, "bin-1", weights)


def test_without_windows_the_default_is_the_raw_path(store):
    _fill_store(store)
    scope = Scope("site", ("site-s",))
    default = compute_indicators(store, REG, scope, DAY)
    raw = compute_indicators(store, REG, scope, DAY, loader=load_series)
    assert [(v.id, v.value, v.coverage) for v in default] == [(v.id, v.value, v.coverage) for v in raw]


def test_a_device_without_windows_is_read_raw_beside_one_with_windows(store):
    _fill_store(store)
    assert recompute_windows(store, "met-1", T0 - 60, T0 + 1441 * 60, 9000)  # m2 and b1: no windows
    devices = {d.id: d for d in REG.devices}
    series = load_windows(store, list(devices.values()), DAY)
    assert series["met-1"].rollup and not series["met-2"].rollup and not series["bin-1"].rollup
    raw = load_series(store, list(devices.values()), DAY)
    assert series["met-2"].times.tolist() == raw["met-2"].times.tolist()
    scope = Scope("site", ("site-s",))
    by_windows = {v.id: v.value for v in compute_indicators(store, REG, scope, DAY)}
    by_raw = {v.id: v.value for v in compute_indicators(store, REG, scope, DAY, loader=load_series)}
    assert by_windows["energy.consumed"] == pytest.approx(by_raw["energy.consumed"], rel=1e-12)
    assert by_windows["energy.consumed"] == pytest.approx(1.5 * (DAY.end - DAY.start) / 3600, rel=0.01)


def test_a_period_without_a_whole_quarter_hour_reads_raw_readings(store):
    _fill_store(store)
    assert recompute_windows(store, "met-1", T0 - 60, T0 + 1441 * 60, 9000)
    short = Period(T0 + 100, T0 + 800)
    (m1,) = [d for d in REG.devices if d.id == "met-1"]
    assert not load_windows(store, [m1], short)["met-1"].rollup
