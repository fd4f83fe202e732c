"""Indicators against the simulator's ground-truth ledger, without the network in between.

The fleet's payloads (firmware counters and encoder) go through the gateway's parser into
a real SQLite store; the end-to-end test through MQTT and the gateway lives with the app. Two days across the
spring DST change, the example registry (3 territories, 34 devices).
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from cloud.indicators import CATALOGUE, Period, Scope, compute_indicators
from simulator.ledger import totals
from simulator.models import water as water_model
from simulator.profiles import load_profiles
from tests.indicators.conftest import SIM_END, SIM_START

START, END = SIM_START, SIM_END


# the first hour's readings are the baselines
PERIOD = Period(START + 3600, END)


def territory_values(simulated, territory: str, raw: bool) -> dict:
    registry, store, _ = simulated
    return {v.id: v for v in compute_indicators(store, registry, Scope("territory", (territory,)), PERIOD, raw=raw)}


TRUTH = {"start": PERIOD.start, "end": PERIOD.end}


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "rollups"])
@pytest.mark.parametrize("territory", ["ecully", "zi-meyzieu", "cc-monts-lyonnais"])
def test_energy_and_waste_match_the_ledger(simulated, territory, raw):
    registry, _, rows = simulated
    values = territory_values(simulated, territory, raw)
    truth = TRUTH
    # the energy each meter's counter accrued in the period: exact, to the rounding of each
    # 15-minute interval's energy to a mWh
    meters = [d for d in registry.devices_of(territory) if d.kind == "energy"]
    rounding_kwh = 0.5e-6 * len(meters) * PERIOD.seconds / 900
    imported = totals(rows, "territory", "wh", channel="grid_import", **truth)[territory] / 1000
    assert values["energy.consumed"].value == pytest.approx(imported, abs=rounding_kwh)
    pv = totals(rows, "territory", "wh", channel="pv_production", **truth).get(territory, 0) / 1000
    assert (values["energy.pv_produced"].value or 0) == pytest.approx(pv, abs=rounding_kwh)
    deposited = totals(rows, "device", "deposited_kg", measured="weight", **truth)
    by_stream: dict[str, float] = {}
    for d in registry.devices_of(territory):
        if d.id in deposited:
            by_stream[d.stream] = by_stream.get(d.stream, 0) + deposited[d.id]
    measured = values["waste.generated"].breakdown["by_stream"]
    for stream, kg in by_stream.items():
        # load-cell noise (15 g) and drift stay within the 100 g band: a deposit is missed
        # only while it is below the band before an emptying
        assert measured.get(stream, 0.0) == pytest.approx(kg, rel=0.01, abs=0.5), stream
    assert values["data.coverage"].value == pytest.approx(100.0)


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "rollups"])
@pytest.mark.parametrize("territory", ["ecully", "zi-meyzieu", "cc-monts-lyonnais"])
def test_water_matches_the_ledger(simulated, territory, raw):
    registry, _, rows = simulated
    values = territory_values(simulated, territory, raw)
    truth = TRUTH
    meters = [d for d in registry.devices_of(territory) if d.kind == "water"]
    assert meters
    # the litres the counters accrued, to the rounding of each 15-minute interval to a mL
    counted = totals(rows, "territory", "litres", kind="water", **truth)[territory] / 1000
    assert values["water.consumed"].value == pytest.approx(counted, abs=0.5e-6 * len(meters) * PERIOD.seconds / 900)
    # and what really flowed: the counters lose less than a litre per meter (whole pulses)
    flowed = totals(rows, "territory", "true_l", kind="water", **truth)[territory] / 1000
    assert values["water.consumed"].value == pytest.approx(flowed, abs=len(meters) * 2e-3)
    # the night flow of each site is its closed-hours draw plus its leak, to a litre an hour
    # (whole pulses); the simulated sites are closed between 01:00 and 05:00
    profiles = load_profiles()
    night = values["water.night_flow"].breakdown["by_site"]
    for d in meters:
        site = registry.site(d.site)
        expected = water_model.site_use(profiles, site.kind)["closed_lph"] + water_model.leak_lph(profiles, 11, site.id)
        assert night[d.site] == pytest.approx(expected, abs=1.0), d.site
    if territory == "ecully":  # seed 11: the Fablab leaks (37 L/h), the others do not
        assert water_model.leak_lph(profiles, 11, "ecully-fablab") > 3 and night["ecully-fablab"] > 3


def test_every_value_is_json_ready_on_simulated_data(simulated):
    registry, store, _ = simulated
    scope = Scope("territories", ("ecully", "zi-meyzieu", "cc-monts-lyonnais"))
    values = compute_indicators(store, registry, scope, PERIOD)  # the default path: rollups
    assert len(values) == len(CATALOGUE)
    for v in values:
        # no NaN/inf and only plain types: the API serialises these as they are
        json.dumps(dataclasses.asdict(v), allow_nan=False)
        assert v.value is not None, v.id
    by_id = {v.id: v for v in values}
    assert 0 < by_id["energy.self_consumption"].value <= 100
    assert 0 <= by_id["energy.pooling_gain"].value <= 100
    assert by_id["energy.peak_demand"].value > by_id["energy.base_load"].value > 0
