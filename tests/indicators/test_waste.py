"""Waste indicators on hand-computed cases: streams, routes, per capita, collection quality."""

from __future__ import annotations

import pytest

from cloud.indicators import Period, Scope, compute_indicators
from tests.indicators.builders import paris, registry, write

SITES = """
[[sites]]
id = "pav"
territory = "town"
name = "Collection point"
kind = "collection_point"
location = [45.77, 4.77]
opening_hours = "24/7"

[[sites]]
id = "depot"
territory = "zone"
name = "Depot"
kind = "household_dropoff"
location = [45.70, 4.70]

[[devices]]
id = "pav-residual"
site = "pav"
kind = "waste"
stream = "residual"
capacity_kg = 100
profile = "waste-scale"
interval_s = 3600

[[devices]]
id = "pav-packaging"
site = "pav"
kind = "waste"
stream = "packaging"
capacity_kg = 100
profile = "waste-scale"
interval_s = 3600

[[devices]]
id = "pav-glass-fill"
site = "pav"
kind = "waste"
stream = "packaging"
capacity_l = 1000
profile = "waste-ultrasonic"
interval_s = 3600

[[devices]]
id = "depot-packaging"
site = "depot"
kind = "waste"
stream = "packaging"
capacity_kg = 100
profile = "waste-scale"
interval_s = 3600

[[devices]]
id = "depot-bulky"
site = "depot"
kind = "waste"
stream = "bulky"
capacity_kg = 1000
profile = "waste-scale"
interval_s = 3600
"""
# the zone sends packaging to landfill instead of recycling (territory route override)
ROUTES = '\n[territories.routes]\npackaging = "landfill"\n'

LEAP_DAY = paris("2028-02-29T00:00")
DAY = Period(LEAP_DAY, LEAP_DAY + 86400)


@pytest.fixture
def reg():
    # ROUTES first: it continues the last [[territories]] table of the base TOML (the zone)
    return registry(ROUTES + SITES)


def weights(store, device, start, grams, hours=24):
    """Hourly readings (the bins' registered interval) over `hours`, holding the last weight."""
    grams = list(grams) + [grams[-1]] * (hours - len(grams))
    write(store, device, [(start + 3600 * i, {"weight_g": g}) for i, g in enumerate(grams)])


def by_id(values):
    return {v.id: v for v in values}


def test_per_capita_rates_and_routes_on_a_leap_day(store, reg):
    # town: 10 kg residual, 30 kg packaging deposited on 2028-02-29 (hourly readings)
    weights(store, "pav-residual", LEAP_DAY, [0, 4_000, 10_000])
    weights(store, "pav-packaging", LEAP_DAY, [0, 30_000])
    town = by_id(compute_indicators(store, reg, Scope("territory", ("town",)), DAY))
    assert town["waste.generated"].value == pytest.approx(40.0)
    assert town["waste.generated"].breakdown["by_stream"] == {"packaging": 30.0, "residual": 10.0}
    # 1,000 inhabitants; one day of a 366-day year
    assert town["waste.per_capita"].value == pytest.approx(40 / 1000 * 366)
    assert town["waste.per_capita"].standing == "better"  # 14.6 ≤ target 480
    assert town["waste.per_capita"].reference["limit"] == 573
    assert town["waste.residual_per_capita"].value == pytest.approx(10 / 1000 * 366)
    assert town["waste.sorting_rate"].value == pytest.approx(75.0)
    assert town["waste.recycling_rate"].value == pytest.approx(75.0)
    assert town["waste.recycling_rate"].standing == "better"  # ≥ 55 %
    assert town["waste.landfill_rate"].value == pytest.approx(0.0)
    # residual → incineration 0.25, packaging → recycling 0.03 kgCO2e/kg (references file)
    assert town["waste.ghg"].value == pytest.approx(10 * 0.25 + 30 * 0.03)


def test_territory_route_override_and_several_territories(store, reg):
    weights(store, "pav-packaging", LEAP_DAY, [0, 30_000])
    weights(store, "depot-packaging", LEAP_DAY, [0, 20_000])   # landfilled in the zone
    weights(store, "depot-bulky", LEAP_DAY, [0, 50_000])       # landfill by default
    zone = by_id(compute_indicators(store, reg, Scope("territory", ("zone",)), DAY))
    assert zone["waste.landfill_rate"].value == pytest.approx(100.0)
    assert zone["waste.landfill_rate"].standing == "worse"  # target ≤ 10 %
    assert zone["waste.recycling_rate"].value == pytest.approx(0.0)
    assert zone["waste.recycling_rate"].standing == "worse"
    both = by_id(compute_indicators(store, reg, Scope("territories", ("town", "zone")), DAY))
    assert both["waste.recycling_rate"].value == pytest.approx(30.0)
    assert both["waste.recycling_rate"].standing == "worse"  # below the EU average 48 %
    assert both["waste.landfill_rate"].value == pytest.approx(70.0)
    assert both["waste.per_capita"].value == pytest.approx(100 / 1500 * 366)


def test_per_capita_is_not_given_for_a_site(store, reg):
    weights(store, "pav-residual", LEAP_DAY, [0, 10_000])
    v = compute_indicators(store, reg, Scope("site", ("pav",)), DAY, ids=["waste.per_capita"])[0]
    assert v.value is None and "territories" in v.formula


def test_fill_at_collection_overflows_and_avoidable_collections(store, reg):
    # scale bin of 100 kg: filled to 60 kg, emptied, filled to 96 kg, emptied, 30 kg
    weights(store, "pav-residual", LEAP_DAY, [0, 30_000, 60_000, 100, 50_000, 96_000, 0, 30_000])
    # ultrasonic bin: 20 %, 40 %, emptied (2 %), 10 %
    write(store, "pav-glass-fill", [(LEAP_DAY + 3600 * i, {"fill_pct": f})
                                    for i, f in enumerate([20.0, 40.0, 2.0, 10.0])])
    pav = by_id(compute_indicators(store, reg, Scope("site", ("pav",)), DAY))
    fill = pav["waste.fill_at_collection"]
    assert fill.value == pytest.approx((60 + 96 + 40) / 3)
    assert fill.breakdown["emptyings"] == 3
    avoidable = pav["waste.avoidable_collections"]
    assert avoidable.value == pytest.approx(100 / 3)  # the glass bin at 40 %
    overflows = pav["waste.overflows"]
    # one cycle reached 95 %; observed container-days: 24 + 4 hourly readings (registry
    # interval) plus the silent packaging scale bin (0 readings)
    assert overflows.breakdown["events"] == 1
    assert overflows.breakdown["container_days"] == pytest.approx((24 + 4) / 24)
    assert overflows.value == pytest.approx(1000 / ((24 + 4) / 24))


def test_fill_only_bins_add_no_mass(store, reg):
    write(store, "pav-glass-fill", [(LEAP_DAY + 3600 * i, {"fill_pct": f}) for i, f in enumerate([10.0, 80.0])])
    v = compute_indicators(store, reg, Scope("site", ("pav",)), DAY, ids=["waste.generated"])[0]
    # the two scale bins sent nothing: no value, coverage 0
    assert v.value is None and v.coverage == 0.0


def test_low_coverage_withholds_the_standing(store, reg):
    # two hourly readings in the day of a bin registered at one an hour: coverage 2/24
    weights(store, "pav-residual", LEAP_DAY, [0, 10_000], hours=2)
    v = compute_indicators(store, reg, Scope("territory", ("town",)), DAY, ids=["waste.per_capita"])[0]
    assert v.value == pytest.approx(10 / 1000 * 366)
    assert v.coverage < 0.5
    assert v.standing is None
    assert any("coverage" in c for c in v.caveats)
