"""Energy indicators on hand-computed cases (real SQLite store, registry models)."""

from __future__ import annotations

import pytest

from cloud.indicators import Period, Scope, compute_indicators, load_context
from cloud.indicators.energy import pooling
from tests.indicators.builders import counter, paris, registry, utc, write

# A and B are 0.78 km apart in the town; C is about 9.5 km away, in the zone.
SITES = """
[[sites]]
id = "site-a"
territory = "town"
name = "A"
kind = "sme_workshop"
location = [45.77, 4.77]
floor_area_m2 = 100
opening_hours = "Mo-Su 00:00-12:00"

[[sites]]
id = "site-b"
territory = "town"
name = "B"
kind = "office"
location = [45.77, 4.78]
employees = 4

[[sites]]
id = "site-c"
territory = "zone"
name = "C"
kind = "plant"
location = [45.70, 4.70]

[[devices]]
id = "a-grid"
site = "site-a"
kind = "energy"
channel = "grid_import"
rated_power_w = 20000

[[devices]]
id = "a-pv"
site = "site-a"
kind = "energy"
channel = "pv_production"
rated_power_w = 20000

[[devices]]
id = "b-grid"
site = "site-b"
kind = "energy"
channel = "grid_import"
rated_power_w = 20000

[[devices]]
id = "b-load"
site = "site-b"
kind = "energy"
channel = "load"
rated_power_w = 20000

[[devices]]
id = "c-grid"
site = "site-c"
kind = "energy"
channel = "grid_import"
rated_power_w = 20000
"""

T0 = utc("2026-05-04T00:00")


@pytest.fixture
def reg():
    return registry(SITES)


def one(store, reg, scope, period, indicator):
    return compute_indicators(store, reg, scope, period, ids=[indicator])[0]


def profile(store, device, start, minutes_w: list[float], first_wh: int = 0):
    """Counter readings every minute from `start`: reading i+1 adds minute i at minutes_w[i]."""
    wh, rows = first_wh, [(start, {"energy_wh": first_wh})]
    for i, w in enumerate(minutes_w):
        wh += round(w / 60)
        rows.append((start + 60 * (i + 1), {"energy_wh": wh}))
    write(store, device, rows)


A = Scope("site", ("site-a",))


def test_peak_load_factor_and_base_load(store, reg):
    # 6 kW, except 12 kW during the second quarter hour; readings every minute
    minutes = [12000 if 15 <= i < 30 else 6000 for i in range(60)]
    profile(store, "a-grid", T0 - 60, [6000] + minutes)
    hour = Period(T0, T0 + 3600)
    peak = one(store, reg, A, hour, "energy.peak_demand")
    assert peak.value == pytest.approx(12.0)
    assert peak.breakdown["at"] == T0 + 900
    # energy: 45 minutes at 6 kW + 15 at 12 kW = 7.5 kWh (readings from the minute before
    # T0 to T0 + 1 h: the hour's energy is known to its end)
    consumed = one(store, reg, A, hour, "energy.consumed").value
    assert consumed == pytest.approx(7.5)
    lf = one(store, reg, A, hour, "energy.load_factor")
    assert lf.value == pytest.approx(100 * 7.5 / (12.0 * 1.0))
    assert lf.unit == "%"
    # 15-min mean power of the four quarter hours: 6, 12, 6, 6
    assert one(store, reg, A, hour, "energy.base_load").value == pytest.approx(6.0)


def test_a_gap_spreads_its_energy_instead_of_making_a_peak(store, reg):
    # 6 kW throughout, but the device was offline for 30 minutes (one delta of 3 kWh)
    rows = [(T0 + 60 * i, {"energy_wh": 100 * (i + 1)}) for i in range(-1, 61) if not 10 < i < 40]
    write(store, "a-grid", rows)
    hour = Period(T0, T0 + 3600)
    assert one(store, reg, A, hour, "energy.peak_demand").value == pytest.approx(6.0)
    assert one(store, reg, A, hour, "energy.consumed").value == pytest.approx(6.0)
    cov = one(store, reg, A, hour, "energy.consumed").coverage
    assert cov == pytest.approx((60 - 29) / 60)


def test_peak_is_the_coincident_peak_of_the_scope(store, reg):
    # A peaks in the first quarter hour, B in the second: the territory peak is their sum
    profile(store, "a-grid", T0, [9000 if i < 15 else 3000 for i in range(60)])
    profile(store, "b-grid", T0, [3000 if i < 15 else 9000 for i in range(60)])
    town = Scope("territory", ("town",))
    assert one(store, reg, town, Period(T0, T0 + 3600), "energy.peak_demand").value == pytest.approx(12.0)


@pytest.mark.parametrize("day, open_hours, total_hours", [
    ("2026-03-29", 11, 23),  # spring forward: local day 23 h, 00:00-12:00 local = 11 h
    ("2026-10-25", 13, 25),  # fall back: local day 25 h, 00:00-12:00 local = 13 h
    ("2026-05-04", 12, 24),
])
def test_off_hours_share_on_dst_change_days(store, reg, day, open_hours, total_hours):
    start = paris(f"{day}T00:00")
    end = start + total_hours * 3600
    counter(store, "a-grid", start - 60, 6000, total_hours * 60 + 2)  # 6 kW steady, to the end
    v = one(store, reg, A, Period(start, end), "energy.off_hours_share")
    assert v.value == pytest.approx(100 * (total_hours - open_hours) / total_hours)
    assert v.breakdown["off_hours_kwh"] == pytest.approx(6 * (total_hours - open_hours))


def test_intensity_per_m2_and_per_inhabitant_on_a_leap_day(store, reg):
    start = paris("2028-02-29T00:00")
    day = Period(start, start + 86400)
    counter(store, "a-grid", start - 60, 6000, 24 * 60 + 2)  # 144 kWh in the day
    site = one(store, reg, A, day, "energy.intensity")
    assert site.unit == "kWh/m²/yr"
    assert site.value == pytest.approx(144 / 100 * 366)
    town = one(store, reg, Scope("territory", ("town",)), day, "energy.intensity")
    assert town.unit == "kWh/inhabitant/yr"
    assert town.value == pytest.approx(144 / 1000 * 366)
    counter(store, "b-grid", start - 60, 1200, 24 * 60 + 2)  # 28.8 kWh, 4 employees, no area
    office = one(store, reg, Scope("site", ("site-b",)), day, "energy.intensity")
    assert office.unit == "kWh/employee/yr"
    assert office.value == pytest.approx(28.8 / 4 * 366)


def test_pv_produced_and_ghg(store, reg):
    hour = Period(T0, T0 + 3600)
    counter(store, "a-pv", T0 - 60, 3000, 62)  # 3 kWh in the hour
    counter(store, "a-grid", T0 - 60, 6000, 62)  # 6 kWh
    assert one(store, reg, A, hour, "energy.pv_produced").value == pytest.approx(3.0)
    ghg = one(store, reg, A, hour, "energy.ghg")
    assert ghg.value == pytest.approx(6.0 * 0.052)
    assert ghg.breakdown["factor"]["source"].startswith("ADEME")


def test_self_consumption_estimated_without_export_meter(store, reg):
    # hour 1: no PV, import 3 kW (the base load); hour 2: PV 9 kW, import 0 during the first
    # half hour (exporting), 1.2 kW during the second half hour
    pv = [0.0] * 60 + [9000.0] * 60
    grid = [3000.0] * 60 + [0.0] * 30 + [1200.0] * 30
    profile(store, "a-pv", T0, pv)
    profile(store, "a-grid", T0, grid)
    period = Period(T0, T0 + 7200)
    # per quarter hour (Wh); the reading at T0 + 2 h closes the last one
    pv_q = [0, 0, 0, 0, 2250, 2250, 2250, 2250]
    imp_q = [750, 750, 750, 750, 0, 0, 300, 300]
    base = 750  # 5th percentile of import over quarter hours without PV
    # importing quarter hours used all their PV; the others at most the base load
    used = [p if imp > 1 else min(p, base) for p, imp in zip(pv_q, imp_q)]
    sc = one(store, reg, A, period, "energy.self_consumption")
    assert sc.value == pytest.approx(100 * sum(used) / sum(pv_q))
    assert sc.caveats  # says it is an estimate
    ss = one(store, reg, A, period, "energy.self_sufficiency")
    assert ss.value == pytest.approx(100 * sum(used) / (sum(imp_q) + sum(used)))


def test_self_sufficiency_home_assistant_form_with_a_load_meter(store, reg):
    hour = Period(T0, T0 + 3600)
    counter(store, "b-grid", T0 - 60, 1200, 62)   # 1.2 kWh imported
    counter(store, "b-load", T0 - 60, 3600, 62)   # 3.6 kWh consumed
    v = one(store, reg, Scope("site", ("site-b",)), hour, "energy.self_sufficiency")
    assert v.value == pytest.approx(100 * (1 - 1.2 / 3.6))


def test_a_load_meter_smaller_than_import_is_a_machine_not_the_site(store, reg):
    hour = Period(T0, T0 + 3600)
    counter(store, "b-grid", T0 - 60, 3000, 62)
    counter(store, "b-load", T0 - 60, 1000, 62)
    v = one(store, reg, Scope("site", ("site-b",)), hour, "energy.self_sufficiency")
    assert v.value == pytest.approx(0.0)


def test_pooling_gain_within_the_legal_perimeter(store, reg):
    hour = Period(T0, T0 + 3600)
    counter(store, "a-pv", T0 - 60, 12000, 62)   # A exports 12 kW (no import, no night: base 0)
    counter(store, "a-grid", T0 - 60, 0, 62)
    counter(store, "b-grid", T0 - 60, 6000, 62)  # B, 0.78 km away, imports 6 kW
    counter(store, "c-grid", T0 - 60, 6000, 62)  # C, 9.5 km away, imports 6 kW
    both = Scope("territories", ("town", "zone"))
    v = one(store, reg, both, hour, "energy.pooling_gain")
    # per quarter hour A's 3 kWh surplus covers B's 1.5 kWh; C is out of the 2 km perimeter
    assert v.unit == "pp"
    assert v.breakdown["pairs"] == [{"from": "site-a", "to": "site-b", "distance_km": pytest.approx(0.777, abs=0.005),
                                     "kwh": pytest.approx(v.breakdown["kwh"])}]
    shared, load = v.breakdown["kwh"], 2 * v.breakdown["kwh"]  # B's import = C's import = shared
    assert shared == pytest.approx(6.0, rel=1e-6)
    assert v.value == pytest.approx(100 * shared / load)
    # a 20 km perimeter includes C: the surplus (3 kWh) covers both (3 kWh) per quarter hour
    ctx = load_context(store, reg, both, hour, ["energy.pooling_gain"])
    wide = pooling(ctx, max_distance_km=20)
    assert wide.gain_pp == pytest.approx(100.0)
    assert pooling(ctx, max_distance_km=0.5).shared_wh == 0


def test_values_carry_no_float_noise(store, reg):
    # 0.1 kWh at A and 0.2 kWh at B: their float sum is 0.30000000000000004
    counter(store, "a-grid", T0, 6000, 2)
    counter(store, "b-grid", T0, 12000, 2)
    town = one(store, reg, Scope("territory", ("town",)), Period(T0, T0 + 3600), "energy.consumed")
    assert town.breakdown["by_site"] == {"site-a": 0.1, "site-b": 0.2}
    assert town.value == 0.3
