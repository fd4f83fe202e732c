"""Symbiosis matching and shared equipment use on hand-computed cases."""

from __future__ import annotations

import pytest

from cloud.indicators import Period, Scope, compute_indicators
from cloud.indicators.circular import DAYS_PER_MONTH
from tests.indicators.builders import paris, registry, write

# joinery J and workshop W near the fablab F (0.78 km and 3.9 km); far plant P (~9.5 km)
SITES = """
[[sites]]
id = "fablab"
territory = "town"
name = "Fablab"
kind = "fablab"
location = [45.77, 4.77]
opening_hours = "Mo-Fr 10:00-12:00"

[[sites]]
id = "joinery"
territory = "town"
name = "Joinery"
kind = "sme_workshop"
location = [45.77, 4.78]

[[sites]]
id = "workshop"
territory = "town"
name = "Workshop"
kind = "sme_workshop"
location = [45.77, 4.82]

[[sites]]
id = "plant"
territory = "town"
name = "Plant"
kind = "plant"
location = [45.70, 4.70]

[[devices]]
id = "joinery-wood"
site = "joinery"
kind = "waste"
stream = "wood"
capacity_kg = 500
profile = "waste-scale"

[[devices]]
id = "workshop-wood"
site = "workshop"
kind = "waste"
stream = "wood"
capacity_kg = 500
profile = "waste-scale"

[[devices]]
id = "plant-wood"
site = "plant"
kind = "waste"
stream = "wood"
capacity_kg = 500
profile = "waste-scale"

[[devices]]
id = "fablab-laser"
site = "fablab"
kind = "energy"
channel = "load"
rated_power_w = 3000

[[needs]]
site = "fablab"
material = "wood"
kg_per_month = 80
max_distance_km = 5
"""

MONTH_S = int(DAYS_PER_MONTH * 86400)
T0 = paris("2026-05-04T00:00")  # a Monday


@pytest.fixture
def reg():
    return registry(SITES)


def test_symbiosis_matches_ranked_by_mass_then_distance(store, reg):
    month = Period(T0, T0 + MONTH_S)
    write(store, "joinery-wood", [(T0, {"weight_g": 0}), (T0 + 3600, {"weight_g": 50_000})])
    write(store, "workshop-wood", [(T0, {"weight_g": 0}), (T0 + 3600, {"weight_g": 200_000})])
    write(store, "plant-wood", [(T0, {"weight_g": 0}), (T0 + 3600, {"weight_g": 400_000})])
    v = compute_indicators(store, reg, Scope("territory", ("town",)), month,
                           ids=["circular.symbiosis_matches"])[0]
    matches = v.breakdown["matches"]
    # the plant is beyond the need's 5 km; the workshop offers more (80 matchable) than
    # the joinery (50), so it ranks first although it is farther
    assert [m["from_site"] for m in matches] == ["workshop", "joinery"]
    assert matches[0]["supply_kg_per_month"] == pytest.approx(200.0)
    assert matches[0]["matchable_kg_per_month"] == pytest.approx(80.0)
    assert matches[1]["matchable_kg_per_month"] == pytest.approx(50.0)
    assert matches[0]["distance_km"] == pytest.approx(3.9, abs=0.1)
    assert v.value == 2


def test_symbiosis_keeps_other_territories_private(store, reg):
    month = Period(T0, T0 + MONTH_S)
    write(store, "joinery-wood", [(T0, {"weight_g": 0}), (T0 + 3600, {"weight_g": 50_000})])
    # the fablab alone in scope: the joinery's output is outside it
    v = compute_indicators(store, reg, Scope("site", ("fablab",)), month,
                           ids=["circular.symbiosis_matches"])[0]
    assert v.value == 0


def test_shared_equipment_use_against_opening_hours(store, reg):
    # Monday: laser at 1 kW from 10:00 to 11:00 local, 60 W otherwise (idle threshold
    # max(20 W, 5% of 3 kW) = 150 W); the fablab is open 10:00-12:00
    day = Period(T0, T0 + 86400)
    rows, wh = [], 0
    for minute in range(24 * 60 + 1):
        rows.append((T0 + 60 * minute, {"energy_wh": wh}))
        wh += 1000 // 60 if 600 <= minute < 660 else 1
    write(store, "fablab-laser", rows)
    v = compute_indicators(store, reg, Scope("site", ("fablab",)), day,
                           ids=["circular.shared_equipment_use"])[0]
    assert v.breakdown["opening_hours"] == pytest.approx(2.0)
    assert v.breakdown["active_hours"] == pytest.approx(1.0)
    assert v.value == pytest.approx(50.0)


def test_shared_equipment_use_over_a_week_counts_only_open_days(store, reg):
    week = Period(T0, T0 + 7 * 86400)
    rows = [(T0 + 60 * m, {"energy_wh": m}) for m in range(7 * 24 * 60)]  # 60 W: idle
    write(store, "fablab-laser", rows)
    v = compute_indicators(store, reg, Scope("site", ("fablab",)), week,
                           ids=["circular.shared_equipment_use"])[0]
    assert v.breakdown["opening_hours"] == pytest.approx(10.0)  # Mo-Fr, 2 h a day
    assert v.value == pytest.approx(0.0)
