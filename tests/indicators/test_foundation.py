"""energy.consumed, waste.generated and data.coverage through compute_indicators."""

from __future__ import annotations

import math

import pytest

from cloud.indicators import (
    Period,
    Scope,
    UnknownIndicator,
    UnknownScope,
    compute_indicators,
)
from tests.indicators.builders import counter, registry, utc, write

SITES = """
[[sites]]
id = "shop"
territory = "town"
name = "Shop"
kind = "sme_workshop"
location = [45.77, 4.77]
floor_area_m2 = 200

[[sites]]
id = "plant"
territory = "zone"
name = "Plant"
kind = "plant"
location = [45.70, 4.70]

[[devices]]
id = "shop-grid"
site = "shop"
kind = "energy"
channel = "grid_import"
rated_power_w = 10000

[[devices]]
id = "shop-pv"
site = "shop"
kind = "energy"
channel = "pv_production"
rated_power_w = 5000

[[devices]]
id = "plant-grid"
site = "plant"
kind = "energy"
channel = "grid_import"
rated_power_w = 50000

[[devices]]
id = "shop-bin"
site = "shop"
kind = "waste"
stream = "residual"
capacity_kg = 100
profile = "waste-scale"

[[devices]]
id = "shop-bin-pack"
site = "shop"
kind = "waste"
stream = "packaging"
capacity_kg = 50
profile = "waste-scale"

[[devices]]
id = "shop-bin-fill"
site = "shop"
kind = "waste"
stream = "packaging"
capacity_l = 240
profile = "waste-ultrasonic"
"""

T0 = utc("2026-05-04T00:00")
HOUR = Period(T0, T0 + 3600)


def by_id(values):
    return {v.id: v for v in values}


@pytest.fixture
def reg():
    return registry(SITES)


def test_energy_consumed_counts_deltas_inside_the_period_from_the_baseline(store, reg):
    # readings every minute from T0 − 5 min at 6 kW (100 Wh/min) up to T0 + 65 min
    counter(store, "shop-grid", T0 - 300, 6000, 71, first_wh=5_000)
    v = by_id(compute_indicators(store, reg, Scope("site", ("shop",)), HOUR))["energy.consumed"]
    # readings at T0 .. T0+59 min: 60 deltas of 100 Wh, the first against T0 − 1 min
    assert v.value == pytest.approx(6.0)
    assert v.unit == "kWh"
    assert v.coverage == pytest.approx(1.0)
    assert v.breakdown["by_site"] == {"shop": pytest.approx(6.0)}
    assert "PV" in v.formula


def test_first_reading_ever_is_only_a_baseline(store, reg):
    counter(store, "shop-grid", T0 + 600, 6000, 11)  # 10:00 .. 20:00 after T0
    v = by_id(compute_indicators(store, reg, Scope("site", ("shop",)), HOUR))["energy.consumed"]
    assert v.value == pytest.approx(1.0)  # 10 deltas of 100 Wh
    assert v.coverage == pytest.approx(11 / 60)


def test_counter_reset_and_glitch(store, reg):
    rows = [(T0 + 60 * i, {"energy_wh": wh}) for i, wh in enumerate(
        [1000, 1100, 1200, 90_000, 1300, 50, 150])]
    write(store, "shop-grid", rows)
    # deltas: +100, +100, 88,800 rejected (10 kW × 60 s × 1.5 + 1 = 251 Wh), 1300 < 90,000 →
    # counted as a reset in full (1300 Wh > 251 → rejected too), 50 reset → +50, +100
    v = by_id(compute_indicators(store, reg, Scope("site", ("shop",)), HOUR))["energy.consumed"]
    assert v.value == pytest.approx((100 + 100 + 50 + 100) / 1000)
    assert v.breakdown["rejected_deltas"] == 2
    assert v.breakdown["resets"] == 2


def test_territory_sums_its_sites_and_territories_sum_territories(store, reg):
    counter(store, "shop-grid", T0 - 60, 6000, 62)   # 6 kWh in the hour
    counter(store, "plant-grid", T0 - 60, 30000, 62)  # 30 kWh
    counter(store, "shop-pv", T0 - 60, 3000, 62)     # PV is not consumption
    town = by_id(compute_indicators(store, reg, Scope("territory", ("town",)), HOUR))
    both = by_id(compute_indicators(store, reg, Scope("territories", ("town", "zone")), HOUR))
    assert town["energy.consumed"].value == pytest.approx(6.0)
    assert both["energy.consumed"].value == pytest.approx(36.0)
    assert both["energy.consumed"].breakdown["by_site"] == {
        "shop": pytest.approx(6.0), "plant": pytest.approx(30.0)}


def test_no_meter_in_scope_gives_no_value_and_zero_coverage(store):
    reg = registry("""
[[sites]]
id = "depot"
territory = "zone"
name = "Depot"
kind = "other"
location = [45.7, 4.7]
""")
    v = by_id(compute_indicators(store, reg, Scope("site", ("depot",)), HOUR))["energy.consumed"]
    assert v.value is None and v.coverage == 0.0


def test_waste_generated_by_stream_with_emptying(store, reg):
    residual = [0, 5_000, 12_000, 30_000, 150, 2_150]   # emptying of 30 kg, then +2 kg
    packaging = [1_000, 1_040, 3_000]                    # noise, then +2 kg over 1,000
    write(store, "shop-bin", [(T0 + 600 * i, {"weight_g": w}) for i, w in enumerate(residual)])
    write(store, "shop-bin-pack", [(T0 - 60 + 600 * i, {"weight_g": w}) for i, w in enumerate(packaging)])
    write(store, "shop-bin-fill", [(T0 + 600 * i, {"fill_pct": f}) for i, f in enumerate([10, 50, 90])])
    v = by_id(compute_indicators(store, reg, Scope("site", ("shop",)), HOUR))["waste.generated"]
    # residual: 5 + 7 + 18 kg, emptied, 150 g above tare is a deposit, +2 kg
    assert v.breakdown["by_stream"]["residual"] == pytest.approx(30.0 + 0.15 + 2.0)
    # packaging: the T0−60 s reading is the baseline; 1,040 stays within the band of the
    # accepted 1,000 g, so the rise is measured from 1,000
    assert v.breakdown["by_stream"]["packaging"] == pytest.approx(2.0)
    assert v.value == pytest.approx(34.15)
    assert v.unit == "kg"
    # coverage of the two scale bins only: 6 + 2 readings of 2 × 60 expected
    assert v.coverage == pytest.approx(8 / 120)


def test_data_coverage_by_device_and_site(store, reg):
    counter(store, "shop-grid", T0, 6000, 30)           # 30 of 60
    counter(store, "plant-grid", T0 - 3600, 6000, 120)  # 60 of 60 (plus an hour before)
    v = by_id(compute_indicators(store, reg, Scope("territories", ("town", "zone")), HOUR,
                                 ids=["data.coverage"]))["data.coverage"]
    assert v.breakdown["by_device"]["shop-grid"] == pytest.approx(50.0)
    assert v.breakdown["by_device"]["plant-grid"] == pytest.approx(100.0)
    assert v.breakdown["by_site"]["plant"] == pytest.approx(100.0)
    # town: shop's five devices (30 readings of 300 expected); zone: the plant meter, full
    assert v.breakdown["by_territory"] == {"town": pytest.approx(10.0), "zone": pytest.approx(100.0)}
    # six devices, 60 expected each: 90 received
    assert v.value == pytest.approx(90 / 360 * 100)
    assert v.coverage == pytest.approx(0.25)


def test_coverage_is_capped_per_device(store, reg):
    # a device sending twice as often as registered does not hide another one's silence
    write(store, "shop-grid", [(T0 + 30 * i, {"energy_wh": i}) for i in range(120)])
    v = compute_indicators(store, reg, Scope("site", ("shop",)), HOUR, ids=["energy.consumed"])[0]
    assert v.coverage == 1.0


def test_unknown_scope_and_indicator(store, reg):
    with pytest.raises(UnknownScope, match="nowhere"):
        compute_indicators(store, reg, Scope("territory", ("nowhere",)), HOUR)
    with pytest.raises(UnknownIndicator, match="energy.bogus"):
        compute_indicators(store, reg, Scope("site", ("shop",)), HOUR, ids=["energy.bogus"])


def test_a_territory_without_sites_answers_with_no_values(store, reg):
    reg = registry("")
    values = compute_indicators(store, reg, Scope("territory", ("town",)), HOUR)
    assert len(values) == 29
    assert all(v.coverage == 0.0 for v in values)
    assert by_id(values)["energy.consumed"].value is None


@pytest.mark.parametrize("start, end, message", [
    (T0, T0, "not after"),
    (T0 * 1000, T0 * 1000 + 1, "milliseconds"),
    (-3600, 3600, "1970-2100"),
    (T0, T0 + 21 * 366 * 86400, "20 years"),
])
def test_periods_are_checked(start, end, message):
    with pytest.raises(ValueError, match=message):
        Period(start, end)


def test_the_widest_period_the_api_accepts_is_computed(store, reg):
    # 1970-01-01 .. 20 years later (cloud/params.py bounds): no error, nothing to report
    values = compute_indicators(store, reg, Scope("territory", ("town",)), Period(0, 20 * 366 * 86400))
    assert by_id(values)["energy.consumed"].value is None


def test_a_repeated_territory_counts_once(store, reg):
    counter(store, "shop-grid", T0 - 60, 6000, 61)
    once = compute_indicators(store, reg, Scope("territory", ("town",)), HOUR, ids=["energy.intensity"])[0]
    twice = compute_indicators(store, reg, Scope("territories", ("town", "town")), HOUR,
                               ids=["energy.intensity"])[0]
    assert twice.value == pytest.approx(once.value)


def test_significant_digits_drop_float_noise_only():
    from cloud.indicators.values import significant

    assert significant(351.65799999999996) == 351.658
    assert significant(0.1 + 0.2) == 0.3
    assert significant(123456.78901234567) == 123456.789012346  # 15 digits kept
    assert significant(-2.5e-7) == -2.5e-7
    assert significant(0.0) == 0.0
    assert math.isinf(significant(math.inf))
