"""One truth per indicator: the same value on every data path and every store.

- The property: generated fleets (meters with resets, reboots, gaps and PV; bins weighing,
  filling or both, with and without a profile; water meters busy by day, dry or leaking at
  night, with resets and gaps; intervals of 60, 300 and 900 s; a territory
  in UTC or in Europe/Paris across a DST change; periods partial, of a local day and of two
  months; a meter moving between sites) stored as the gateway stores them, on real SQLite
  (rollups recomputed from the stored readings) and on a real InfluxDB (rollups from the
  aggregate stage's memory of what it wrote). Every indicator of the catalogue from the
  rollups equals the one from raw readings, value, coverage and breakdown; the two stores
  hold the same rollup rows, byte for byte, and give the same values, read directly and
  through the API's rollup cache (cold, then warm).
- Hand-computed waste cases (emptyings, overflows, avoidable collections, fill at
  collection) and a moved sensor, on both paths and both stores.
"""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import HealthCheck, given, settings

from boucle.protocol import Reading
from boucle.storage import open_store
from boucle.storage.sqlite import SQLiteStore
from cloud.indicators import CATALOGUE, Period, Scope, compute_indicators
from gateway.recent import RecentReadings
from tests.indicators.builders import registry, utc
from tests.indicators.fleets import fill_as_the_gateway_does, fleets, readings_of, registry_of

TERRITORY = Scope("territory", ("terr",))
_databases = itertools.count()


def by_id(values):
    return {v.id: dataclasses.asdict(v) for v in values}


def both_paths(store, reg, scope, period):
    raw = by_id(compute_indicators(store, reg, scope, period, raw=True))
    rolled = by_id(compute_indicators(store, reg, scope, period))
    return raw, rolled


def assert_same(a: dict, b: dict, what: str) -> None:
    assert set(a) == set(CATALOGUE)
    for i in CATALOGUE:
        assert a[i] == b[i], f"{what}: {i}\n{a[i]}\n{b[i]}"


@pytest.fixture(scope="module")
def influx_server(tmp_path_factory):
    from tests.conftest import require_binary
    from tests.servers import InfluxDB

    require_binary("influxd", "influxdb")
    server = InfluxDB(tmp_path_factory.mktemp("influx")).start()
    yield server
    server.stop()


SETTINGS = settings(max_examples=15, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def rollup_rows(store, devices):
    everything = (0, 2**33)
    return (store.day_rollups(devices, *everything), store.month_rollups(devices, *everything),
            store.month_slots(devices, *everything))


@SETTINGS
@given(fleet=fleets)
def test_rollups_and_raw_readings_give_every_indicator_the_same_value(tmp_path_factory, influx_server, fleet):
    reg = registry_of(fleet)
    readings = readings_of(fleet)
    period = fleet.period
    sqlite = SQLiteStore(tmp_path_factory.mktemp("truth") / "x.db")
    url = f"influx+http://127.0.0.1:{influx_server.port}/truth{next(_databases)}"
    influx = open_store(url)
    cached = open_store(url, rollup_cache_bytes=2**26)
    try:
        fill_as_the_gateway_does(sqlite, reg, readings, fleet.batches, fleet.seed)
        fill_as_the_gateway_does(influx, reg, readings, fleet.batches, fleet.seed, RecentReadings(10**6))
        devices = [d.id for d in reg.devices]
        assert rollup_rows(influx, devices) == rollup_rows(sqlite, devices)
        raw, rolled = both_paths(sqlite, reg, TERRITORY, period)
        assert_same(raw, rolled, "SQLite, raw readings vs rollups")
        influx_rolled = by_id(compute_indicators(influx, reg, TERRITORY, period))
        assert_same(rolled, influx_rolled, "rollups, SQLite vs InfluxDB")
        for attempt in ("cold", "warm"):
            assert_same(rolled, by_id(compute_indicators(cached, reg, TERRITORY, period)),
                        f"rollups, SQLite vs InfluxDB through the rollup cache ({attempt})")
        # and a site's values (a moved meter counts at each site for its stay)
        for site in ("lab", "shop"):
            raw, rolled = both_paths(sqlite, reg, Scope("site", (site,)), period)
            assert_same(raw, rolled, f"site {site}")
    finally:
        sqlite.close()
        influx.close()
        cached.close()


# --- hand-computed cases ---------------------------------------------------------------

BIN_SITE = """
[[sites]]
id = "pav"
territory = "town"
name = "Collection point"
kind = "collection_point"
location = [45.77, 4.77]
opening_hours = "24/7"

[[devices]]
id = "bin"
site = "pav"
kind = "waste"
stream = "residual"
capacity_kg = 120
interval_s = 300
"""
DAY0 = utc("2026-06-02T00:00")


def issue_bin_readings() -> list[Reading]:
    """A scale bin with a fill sensor and no profile, read every 5 min from 06:00 to 12:00:
    +500 g a reading to 17.5 kg (fill 25.0 %), emptied at 09:00; +300 g a reading to 8.7 kg
    (12.4 %), emptied at 11:30; then +300 g a reading to 1.5 kg."""
    out, weight = [], 0
    for i in range(72):
        t = DAY0 + 6 * 3600 + 300 * i
        if t == DAY0 + 9 * 3600 or t == DAY0 + 11 * 3600 + 1800:
            weight = 0
        elif i:
            weight += 500 if t < DAY0 + 9 * 3600 else 300
        out.append(Reading("bin", 1, i, t, {"weight_g": weight, "fill_pct": round(weight / 700, 1)}))
    return out


@pytest.fixture(params=["sqlite", "influx"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "x.db")
    else:
        server = request.getfixturevalue("influxdb")
        s = open_store(f"influx+http://127.0.0.1:{server.port}/hand")
    yield s
    s.close()


def test_the_issue_table_gives_the_same_right_values_in_both_columns(store):
    reg = registry(BIN_SITE)
    fill_as_the_gateway_does(store, reg, issue_bin_readings(), 3, seed=1)
    town = Scope("territory", ("town",))
    six_hours = Period(DAY0 + 6 * 3600, DAY0 + 12 * 3600)
    whole_day = Period(DAY0, DAY0 + 86400)
    columns = [compute_indicators(store, reg, town, six_hours, raw=True), compute_indicators(store, reg, town, six_hours),
               compute_indicators(store, reg, town, whole_day), compute_indicators(store, reg, town, whole_day, raw=True)]
    for values in ({x.id: x for x in column} for column in columns):
        assert values["waste.generated"].value == pytest.approx(17.5 + 8.7 + 1.5)
        assert values["waste.fill_at_collection"].value == pytest.approx((25.0 + 12.4) / 2)
        assert values["waste.fill_at_collection"].breakdown["emptyings"] == 2
        assert values["waste.avoidable_collections"].value == 100.0
        assert values["waste.overflows"].value == 0.0
        # 72 readings × 5 min = a quarter of a container-day, in the 6 hours as in the day
        assert values["waste.overflows"].breakdown["container_days"] == pytest.approx(0.25)
    assert {x.id: x.coverage for x in columns[0]}["waste.generated"] == 1.0
    assert {x.id: x.coverage for x in columns[2]}["waste.generated"] == pytest.approx(0.25)


OVERFLOW_SITE = BIN_SITE.replace("capacity_kg = 120", "capacity_kg = 100") + """
[[devices]]
id = "fill-only"
site = "pav"
kind = "waste"
stream = "packaging"
capacity_l = 660
interval_s = 900
"""


def test_overflows_avoidable_collections_and_fill_at_collection(store):
    """Three cycles of the scale bin (100 kg): emptied at 97 kg (an overflow), at 40 kg
    (avoidable) and at 60 kg; the fill-only bin emptied at 99 % (an overflow) and 30 %
    (avoidable). Fill before each emptying: the scale bin's weight ÷ capacity (it has no
    fill sensor), the fill-only bin's reading."""
    reg = registry(OVERFLOW_SITE)
    rows, seq = [], 0
    for cycle, top_kg in enumerate((97, 40, 60)):
        base = DAY0 + cycle * 86400
        for k in range(top_kg + 1):
            rows.append(Reading("bin", 1, seq, base + 300 * k, {"weight_g": 1000 * k}))
            seq += 1
        rows.append(Reading("bin", 1, seq, base + 300 * (top_kg + 1), {"weight_g": 0}))
        seq += 1
    fills = [(0, 10.0), (3, 60.0), (6, 99.0), (7, 4.0), (30, 20.0), (40, 30.0), (41, 2.0)]
    rows += [Reading("fill-only", 1, i, DAY0 + 900 * q, {"fill_pct": f}) for i, (q, f) in enumerate(fills)]
    fill_as_the_gateway_does(store, reg, rows, 4, seed=2)
    period = Period(DAY0, DAY0 + 3 * 86400)
    for raw in (True, False):
        values = {v.id: v for v in compute_indicators(store, reg, Scope("site", ("pav",)), period, raw=raw)}
        fac = values["waste.fill_at_collection"]
        assert fac.breakdown["emptyings"] == 5
        assert fac.value == pytest.approx((97 + 40 + 60 + 99 + 30) / 5)
        assert values["waste.avoidable_collections"].breakdown["avoidable"] == 2
        assert values["waste.avoidable_collections"].value == pytest.approx(40.0)
        over = values["waste.overflows"]
        assert over.breakdown["events"] == 2
        observed = (len(rows) - len(fills)) * 300 + len(fills) * 900
        assert over.breakdown["container_days"] == pytest.approx(observed / 86400)
        assert over.value == pytest.approx(1000 * 2 / (observed / 86400))
        assert values["waste.generated"].value == pytest.approx(97 + 40 + 60)  # the scale bin only


MOVE_SITES = """
[[sites]]
id = "old"
territory = "town"
name = "Old workshop"
kind = "sme_workshop"
location = [45.77, 4.77]

[[sites]]
id = "new"
territory = "town"
name = "New workshop"
kind = "sme_workshop"
location = [45.771, 4.77]

[[devices]]
id = "meter"
site = "new"
kind = "energy"
channel = "grid_import"
rated_power_w = 20000
moves = [{ site = "old", until = 2026-06-03T10:15:00Z }]
"""


def test_a_moved_meter_counts_at_each_site_for_its_stay(store):
    reg = registry(MOVE_SITES)
    # 6 kW from 2 June 00:00 to 4 June 00:00, one reading a minute
    rows = [Reading("meter", 1, i, DAY0 + 60 * i, {"energy_wh": 100 * i}) for i in range(2 * 1440 + 1)]
    fill_as_the_gateway_does(store, reg, rows, 3, seed=3)
    period = Period(DAY0, DAY0 + 2 * 86400)
    moved_at = utc("2026-06-03T10:15")
    for raw in (True, False):
        old = compute_indicators(store, reg, Scope("site", ("old",)), period, ids=["energy.consumed"], raw=raw)[0]
        new = compute_indicators(store, reg, Scope("site", ("new",)), period, ids=["energy.consumed"], raw=raw)[0]
        town = compute_indicators(store, reg, Scope("territory", ("town",)), period,
                                  ids=["energy.consumed", "data.coverage"], raw=raw)
        assert old.value == pytest.approx(6.0 * (moved_at - DAY0) / 3600)
        assert new.value == pytest.approx(6.0 * (DAY0 + 2 * 86400 - moved_at) / 3600)
        assert town[0].value == pytest.approx(6.0 * 48)
        assert town[0].breakdown["by_site"] == {"old": pytest.approx(old.value), "new": pytest.approx(new.value)}
        # each site expects readings only for the time the meter was there
        assert old.coverage == pytest.approx(1.0) and new.coverage == pytest.approx(1.0)
        assert town[1].breakdown["by_device"] == {"meter": pytest.approx(100.0)}
