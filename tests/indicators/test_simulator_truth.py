"""Indicators against the simulator's ground-truth ledger, without the network in between.

The fleet's payloads (firmware counters and encoder) go through the gateway's parser into
a real SQLite store; the end-to-end test through MQTT and the gateway lives with the app. Two days across the
spring DST change, the example registry (3 territories, 34 devices).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from boucle.accounting import counter_deltas, fill_emptyings, per_interval, waste_events
from cloud.indicators import Period, Scope, compute_indicators, indicator_series
from cloud.indicators.source import load_series, series_from_rollups
from cloud.indicators.windows import load_windows
from simulator.ledger import totals
from tests.indicators.conftest import SIM_END, SIM_START

START, END = SIM_START, SIM_END


# the first hour's readings are the baselines
PERIOD = Period(START + 3600, END)


@pytest.mark.parametrize("loader", [load_series, load_windows], ids=["raw", "windows"])
@pytest.mark.parametrize("territory", ["ecully", "zi-meyzieu", "cc-monts-lyonnais"])
def test_energy_and_waste_match_the_ledger(simulated, territory, loader):
    registry, store, rows = simulated
    values = {v.id: v for v in compute_indicators(store, registry, Scope("territory", (territory,)), PERIOD,
                                                  loader=loader)}
    truth = {"start": PERIOD.start, "end": PERIOD.end}
    imported = totals(rows, "territory", "wh", channel="grid_import", **truth)[territory] / 1000
    assert values["energy.consumed"].value == pytest.approx(imported, abs=1e-9)
    pv = totals(rows, "territory", "wh", channel="pv_production", **truth).get(territory, 0) / 1000
    assert (values["energy.pv_produced"].value or 0) == pytest.approx(pv, abs=1e-9)
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


def test_every_value_is_json_ready_on_simulated_data(simulated):
    registry, store, _ = simulated
    scope = Scope("territories", ("ecully", "zi-meyzieu", "cc-monts-lyonnais"))
    values = compute_indicators(store, registry, scope, PERIOD)  # the default path: windows
    assert len(values) == 24
    for v in values:
        # no NaN/inf and only plain types: the API serialises these as they are
        json.dumps(dataclasses.asdict(v), allow_nan=False)
        assert v.value is not None, v.id
    by_id = {v.id: v for v in values}
    assert 0 < by_id["energy.self_consumption"].value <= 100
    assert 0 <= by_id["energy.pooling_gain"].value <= 100
    assert by_id["energy.peak_demand"].value > by_id["energy.base_load"].value > 0


# --- the rollup data path -----------------------------------------------------------------

STEP = 900


def rollup_loader(store, devices, period):
    """15-minute rollups made from the readings with boucle.accounting, as ingest would."""
    out = {}
    for d in devices:
        fields = ["energy_wh"] if d.kind == "energy" else ["weight_g", "fill_pct"]
        rows = store.readings(d.id, period.start, period.end, fields)
        times = np.array([r.ts for r in rows], dtype=np.int64)
        inside = times >= period.start
        if d.kind == "energy":
            deltas = counter_deltas([r.values["energy_wh"] for r in rows], times, d.rated_power_w)
            starts, wh, counts = per_interval(times[inside], deltas.deltas_wh[inside], STEP)
            out[d.id] = series_from_rollups(d.id, STEP, starts, counts, wh=wh)
            continue
        starts, _, counts = per_interval(times[inside], np.zeros(int(inside.sum())), STEP)
        weight = np.array([r.values["weight_g"] if r.values["weight_g"] is not None else np.nan
                           for r in rows])
        if not np.isnan(weight).all():
            events = waste_events(times, weight)
            fill = weight / 1000 / d.capacity_kg * 100
            empt = None
        else:
            events = None
            fill = np.array([r.values["fill_pct"] for r in rows], dtype=np.float64)
            empt = fill_emptyings(times, fill)
        keys = times[inside] - times[inside] % STEP
        index = np.searchsorted(keys, starts)
        max_fill = np.maximum.reduceat(fill[inside], index) if index.size else index
        out[d.id] = series_from_rollups(d.id, STEP, starts, counts, max_fill_pct=max_fill,
                                        waste=events, fill_emptyings=empt)
    return out


def test_rollups_give_the_same_indicators_as_readings(simulated):
    registry, store, _ = simulated
    scope = Scope("territories", ("ecully", "zi-meyzieu", "cc-monts-lyonnais"))
    raw = {v.id: v for v in compute_indicators(store, registry, scope, PERIOD, loader=load_series)}
    rolled = {v.id: v for v in compute_indicators(store, registry, scope, PERIOD, loader=rollup_loader)}
    exact = ["energy.consumed", "energy.pv_produced", "energy.ghg", "energy.intensity",
             "waste.generated", "waste.per_capita", "waste.recycling_rate", "waste.ghg",
             "waste.fill_at_collection", "waste.avoidable_collections", "data.coverage",
             "circular.symbiosis_matches"]
    for i in exact:
        assert rolled[i].value == pytest.approx(raw[i].value, rel=1e-9), i
        assert rolled[i].coverage == pytest.approx(raw[i].coverage), i
    # power-profile values move by at most a reading interval's worth of attribution
    for i in ["energy.peak_demand", "energy.base_load", "energy.self_consumption",
              "energy.self_sufficiency", "energy.off_hours_share", "energy.load_factor"]:
        assert rolled[i].value == pytest.approx(raw[i].value, rel=0.05, abs=0.5), i
    assert rolled["waste.overflows"].value == pytest.approx(raw["waste.overflows"].value, abs=1.0)
    # and a series over rollups asks the loader again for each step
    steps = indicator_series(store, registry, scope, "energy.consumed", PERIOD, 86400 // 2,
                             loader=rollup_loader)
    assert sum(s.value for s in steps) == pytest.approx(raw["energy.consumed"].value)
