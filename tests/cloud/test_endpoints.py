"""Endpoints against the indicator package, problem details, CSV, FIWARE and the cache."""

from __future__ import annotations

import csv
import io
import time

import pytest
from fastapi.testclient import TestClient

from boucle.registry import RegistryFile
from boucle.storage import DeviceState
from boucle.storage.sqlite import SQLiteStore
from cloud.indicators import (
    CATALOGUE,
    Period,
    Scope,
    compute_indicators,
    indicator_series,
    load_references,
    pooling_detail,
)
from cloud.params import default_end, parse_instant, parse_step
from cloud.problems import ApiProblem
from tests.cloud.conftest import ADMIN, ECULLY, END, PERIOD, START, make_app, simulate
from tests.conftest import EXAMPLE_REGISTRY

H = {"X-API-Key": ADMIN}
T0, T1 = START + 3600, END  # PERIOD


def ok(client, url, **params):
    r = client.get(url, params={**PERIOD, **params}, headers=H)
    assert r.status_code == 200, r.text
    return r


@pytest.fixture(scope="module")
def truth(simulated_db):
    """What the indicator package computes itself, to compare the API with."""
    store = SQLiteStore(simulated_db)
    yield store, RegistryFile(EXAMPLE_REGISTRY).current(), load_references()
    store.close()


def test_territory_indicators_are_the_package_values(client, truth):
    store, registry, refs = truth
    body = ok(client, "/v1/territories/ecully/indicators").json()
    expected = compute_indicators(store, registry, Scope("territory", ("ecully",)), Period(T0, T1), None, refs)
    assert [v["id"] for v in body["indicators"]] == list(CATALOGUE)
    for got, want in zip(body["indicators"], expected):
        assert got["value"] == pytest.approx(want.value), got["id"]
        assert got["coverage"] == pytest.approx(want.coverage)
        assert got["unit"] == want.unit and got["standing"] == want.standing and got["formula"] == want.formula
        assert got["period"] == {"from": "2026-03-28T01:00:00Z", "to": "2026-03-30T00:00:00Z"}
    assert body["scope"] == {"kind": "territory", "ids": ["ecully"]}


def test_default_period_is_the_last_30_days(client):
    body = client.get("/v1/territories/ecully/indicators?ids=energy.consumed", headers=H).json()
    period = body["period"]
    t1 = parse_instant("to", period["to"])
    assert t1 - parse_instant("from", period["from"]) == 30 * 86400
    assert t1 % 900 == 0 and abs(t1 - default_end()) <= 900  # on a quarter-hour: read from rollups


def test_site_indicators_and_unix_seconds(client, truth):
    store, registry, refs = truth
    r = client.get("/v1/sites/zim-fablab/indicators",
                   params={"from": str(T0), "to": str(T1), "ids": "energy.consumed,data.coverage"}, headers=H)
    values = {v["id"]: v for v in r.json()["indicators"]}
    want = compute_indicators(store, registry, Scope("site", ("zim-fablab",)), Period(T0, T1),
                              ["energy.consumed"], refs)[0]
    assert list(values) == ["energy.consumed", "data.coverage"]
    assert values["energy.consumed"]["value"] == pytest.approx(want.value) and want.value > 0


def test_compare_gives_each_territory_and_the_union(client):
    body = ok(client, "/v1/compare", territories="ecully,zi-meyzieu", ids="energy.consumed,waste.generated").json()
    assert [s["scope"]["ids"] for s in body["territories"]] == [["ecully"], ["zi-meyzieu"]]
    assert body["combined"]["scope"] == {"kind": "territories", "ids": ["ecully", "zi-meyzieu"]}
    each = [{v["id"]: v["value"] for v in s["indicators"]} for s in body["territories"]]
    union = {v["id"]: v["value"] for v in body["combined"]["indicators"]}
    for indicator in ("energy.consumed", "waste.generated"):
        assert union[indicator] == pytest.approx(each[0][indicator] + each[1][indicator])


def test_series_follows_the_step_and_sums_to_the_total(client, truth):
    store, registry, refs = truth
    body = ok(client, "/v1/territories/ecully/indicators/energy.consumed/series", step="6h").json()
    assert body["step_s"] == 21600 and body["unit"] == "kWh"
    points = body["points"]
    assert len(points) == 8  # 47 h in 6 h steps, the last one shorter
    assert points[0]["from"] == "2026-03-28T01:00:00Z" and points[-1]["to"] == "2026-03-30T00:00:00Z"
    assert points[-1]["from"] == "2026-03-29T19:00:00Z"
    want = indicator_series(store, registry, Scope("territory", ("ecully",)), "energy.consumed",
                            Period(T0, T1), 21600, refs)
    assert [p["value"] for p in points] == pytest.approx([v.value for v in want])
    total = ok(client, "/v1/territories/ecully/indicators", ids="energy.consumed").json()["indicators"][0]["value"]
    assert sum(p["value"] for p in points) == pytest.approx(total, rel=1e-9)


@pytest.mark.parametrize("text,seconds", [("15m", 900), ("1h", 3600), ("1d", 86400), ("1w", 604800), ("3600", 3600)])
def test_step_forms(text, seconds):
    assert parse_step(text) == seconds


def test_pooling_and_symbiosis(client, truth):
    store, registry, refs = truth
    body = ok(client, "/v1/territories/ecully/pooling").json()
    want = pooling_detail(store, registry, Scope("territory", ("ecully",)), Period(T0, T1), None, refs)
    assert body["gain_pp"] == pytest.approx(want["gain_pp"]) and body["distance_km"] == want["distance_km"]
    assert body["with_pooling_pct"] == pytest.approx(body["self_sufficiency_pct"] + body["gain_pp"])
    assert {p["from"] for p in body["pairs"]} and body["sites"]
    narrow = ok(client, "/v1/territories/ecully/pooling", max_distance_km="0.1").json()
    assert narrow["distance_km"] == 0.1 and narrow["shared_kwh"] <= body["shared_kwh"]
    sym = ok(client, "/v1/territories/zi-meyzieu/symbiosis").json()
    assert sym["scope"]["ids"] == ["zi-meyzieu"]
    assert sym["matchable_kg_per_month"] == pytest.approx(sum(m["matchable_kg_per_month"] for m in sym["matches"]))


@pytest.mark.parametrize("url,params,name", [
    ("/v1/territories/ecully/indicators", {"from": "yesterday"}, "from"),
    ("/v1/territories/ecully/indicators", {"to": "2026-13-45"}, "to"),
    ("/v1/territories/ecully/indicators", {"from": "2026-02-01", "to": "2026-01-01"}, "from"),
    # other scripts' digits are digits to int() and to a regex's \d, but no time anyone wrote
    ("/v1/territories/ecully/indicators", {"from": "１７７４６５６０００"}, "from"),  # fullwidth
    ("/v1/territories/ecully/indicators", {"from": "1774656000", "to": "١٧٧٤٧٤٢٤٠٠"}, "to"),  # Arabic-Indic
    ("/v1/territories/ecully/indicators", {"to": "２026-03-30"}, "to"),
    ("/v1/territories/ecully/indicators", {"ids": "energy.consumed,energy.magic"}, "ids"),
    ("/v1/territories/ecully/indicators", {"format": "xlsx"}, "format"),
    ("/v1/territories/ecully/indicators/energy.consumed/series", {"step": "10s"}, "step"),
    ("/v1/territories/ecully/indicators/energy.consumed/series", {"step": "soon"}, "step"),
    ("/v1/territories/ecully/indicators/energy.consumed/series", {"step": "６h"}, "step"),
    ("/v1/territories/ecully/indicators/energy.consumed/series",
     {"step": "1m", "from": "2020-01-01", "to": "2026-01-01"}, "step"),
    ("/v1/territories/ecully/pooling", {"max_distance_km": "far"}, "max_distance_km"),
    ("/v1/territories/ecully/pooling", {"max_distance_km": "-1"}, "max_distance_km"),
    ("/v1/compare", {}, "territories"),
    ("/v1/compare", {"territories": ","}, "territories"),
    ("/v1/fiware/territories/ecully/waste-containers", {"options": "sparse"}, "options"),
])
def test_malformed_parameters_give_422_naming_the_parameter(client, url, params, name):
    r = client.get(url, params=params, headers=H)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert name in body["title"] and body["status"] == 422 and body["detail"]
    assert body["type"] == "about:blank" and body["instance"] == url


def test_unknown_paths_and_methods_are_problems(client):
    for r, status in ((client.get("/v1/nowhere", headers=H), 404),
                      (client.delete("/v1/territories", headers=H), 405),
                      (client.get("/v1/territories/ecully/indicators/energy.magic/series", headers=H), 404)):
        assert r.status_code == status
        assert r.headers["content-type"] == "application/problem+json"
        assert set(r.json()) <= {"type", "title", "status", "detail", "instance"} and r.json()["status"] == status


def test_csv_exports(client):
    r = ok(client, "/v1/territories/ecully/indicators", format="csv", ids="energy.consumed,waste.per_capita")
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="ecully-indicators.csv"' in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["id"] for row in rows] == ["energy.consumed", "waste.per_capita"]
    json_values = {v["id"]: v for v in ok(client, "/v1/territories/ecully/indicators",
                                           ids="energy.consumed,waste.per_capita").json()["indicators"]}
    for row in rows:
        assert float(row["value"]) == pytest.approx(json_values[row["id"]]["value"])
        assert row["unit"] == json_values[row["id"]]["unit"] and row["scope"] == "ecully"
        assert float(row["coverage"]) == pytest.approx(json_values[row["id"]]["coverage"])
    assert rows[1]["reference_target"] and rows[1]["standing"] in ("better", "between", "worse")
    series = ok(client, "/v1/territories/ecully/indicators/energy.consumed/series", step="1d", format="csv")
    srows = list(csv.DictReader(io.StringIO(series.text)))
    assert len(srows) == 2 and list(srows[0]) == ["scope", "indicator", "unit", "from", "to", "value",
                                                  "coverage", "standing"]
    cmp = ok(client, "/v1/compare", territories="ecully,zi-meyzieu", ids="energy.consumed", format="csv")
    assert [row["scope"] for row in csv.DictReader(io.StringIO(cmp.text))] == ["ecully", "zi-meyzieu",
                                                                               "ecully+zi-meyzieu"]


def test_fiware_key_performance_indicators(client):
    r = ok(client, "/v1/fiware/territories/ecully/key-performance-indicators", ids="waste.per_capita,energy.consumed")
    assert r.headers["content-type"] == "application/ld+json"
    kpi, energy = r.json()
    assert kpi["type"] == "KeyPerformanceIndicator"
    assert kpi["id"] == "urn:ngsi-ld:KeyPerformanceIndicator:boucle:territory:ecully:waste.per_capita"
    for name in ("kpiValue", "calculationFormula", "calculationPeriod", "areaServed", "currentStanding"):
        assert kpi[name]["type"] == "Property", name
    assert kpi["areaServed"]["value"] == "Écully"
    assert kpi["calculationPeriod"]["value"] == {"from": "2026-03-28T01:00:00Z", "to": "2026-03-30T00:00:00Z"}
    assert kpi["currentStanding"]["value"] in ("veryGood", "good", "fair", "bad", "veryBad")
    assert isinstance(kpi["kpiValue"]["value"], float)
    assert "currentStanding" not in energy  # no reference, no standing
    assert kpi["location"]["type"] == "GeoProperty" and kpi["location"]["value"]["coordinates"] == [4.7778, 45.7745]
    assert "@context" in kpi
    flat = ok(client, "/v1/fiware/sites/ecully-fablab/key-performance-indicators", ids="energy.consumed",
              options="keyValues").json()[0]
    assert isinstance(flat["kpiValue"], float) and flat["areaServed"].startswith("La Fabrique")


def test_fiware_waste_containers(client, truth):
    _, registry, _ = truth
    r = ok(client, "/v1/fiware/territories/ecully/waste-containers", options="keyValues")
    assert r.headers["content-type"] == "application/ld+json"
    bins = {e["id"].rsplit(":", 1)[1]: e for e in r.json()}
    assert set(bins) == {d.id for d in registry.devices_of("ecully") if d.kind == "waste"}
    for e in bins.values():
        assert e["type"] == "WasteContainer"
        assert 0 <= e["fillingLevel"] <= 1
        assert isinstance(e["storedWasteKind"], list) and e["storedWasteKind"]
        assert e["location"]["type"] == "Point"
        assert e["dateObserved"] == "2026-03-29T23:59:00Z"
    weighed = [e for e in bins.values() if "cargoWeight" in e]
    assert weighed and all(e["cargoWeight"] >= 0 for e in weighed)
    # the industrial zone's bins are emptied every morning at 06:00 UTC
    zone = ok(client, "/v1/fiware/territories/zi-meyzieu/waste-containers", options="keyValues").json()
    emptied = [e["dateLastEmptying"] for e in zone if "dateLastEmptying" in e]
    assert emptied and set(emptied) <= {"2026-03-28T06:00:00Z", "2026-03-29T06:00:00Z"}
    normalized = ok(client, "/v1/fiware/sites/ecully-fablab/waste-containers").json()
    assert normalized and normalized[0]["fillingLevel"]["type"] == "Property"


def test_fiware_water_consumption(client, truth):
    _, registry, _ = truth
    r = ok(client, "/v1/fiware/territories/ecully/water-consumption", options="keyValues")
    assert r.headers["content-type"] == "application/ld+json"
    meters = {e["id"].rsplit(":", 1)[1]: e for e in r.json()}
    assert set(meters) == {d.id for d in registry.devices_of("ecully") if d.kind == "water"} != set()
    for e in meters.values():
        # a litre a minute from 07:00 to 19:00 UTC on both days: 1,440 L on the counter at the end
        assert e["type"] == "WaterConsumptionObserved" and e["waterConsumption"] == 1.44
        assert (e["minFlow"], e["maxFlow"]) == (0.0, 60.0)  # L/h over the period's quarter-hours
        assert e["alarmFlowPersistence"] == "Nothing to report" and e["alarmInProgress"] == 0
        assert e["dateObserved"] == "2026-03-29T23:59:00Z" and e["location"]["type"] == "Point"
    normalized = ok(client, "/v1/fiware/sites/ecully-fablab/water-consumption").json()
    assert [e["waterConsumption"]["type"] for e in normalized] == ["Property"]
    assert normalized[0]["refSite"] == {"type": "Relationship", "object": "urn:ngsi-ld:Site:boucle:ecully-fablab"}


def test_cache_hits_and_is_invalidated_by_new_data(tmp_path):
    db = tmp_path / "boucle.db"
    store = SQLiteStore(db)
    simulate(store, START, START + 6 * 3600)
    with TestClient(make_app(db, rate_limit_per_s=0.0)) as c:
        params = {"from": str(START + 3600), "to": str(START + 12 * 3600), "ids": "energy.consumed"}
        first = c.get("/v1/territories/ecully/indicators", params=params, headers=H)
        again = c.get("/v1/territories/ecully/indicators", params=params, headers=H)
        assert (first.headers["x-cache"], again.headers["x-cache"]) == ("miss", "hit")
        assert first.json() == again.json()
        other_key = c.get("/v1/territories/ecully/indicators", params=params, headers={"X-API-Key": ECULLY})
        assert other_key.headers["x-cache"] == "hit"  # same query, same answer, whoever may see it
        # the gateway stores six more hours: the data version moves and the answer follows
        version = store.data_version()
        simulate(store, START + 6 * 3600, START + 12 * 3600)
        assert store.data_version() != version
        after = c.get("/v1/territories/ecully/indicators", params=params, headers=H)
        assert after.headers["x-cache"] == "miss"
        assert after.json()["indicators"][0]["value"] > first.json()["indicators"][0]["value"]
    store.close()


def test_cache_can_be_disabled(simulated_db):
    with TestClient(make_app(simulated_db, cache_entries=0, rate_limit_per_s=0.0)) as c:
        url = "/v1/territories/ecully/indicators?ids=energy.consumed"
        assert [c.get(url, headers=H).headers["x-cache"] for _ in range(2)] == ["miss", "miss"]


def test_devices_report_last_seen_and_health(client, simulated_db):
    store = SQLiteStore(simulated_db)
    store.write_device_states([DeviceState("ecully-fablab-grid", "health",
                                           {"buffer_depth": 7, "rssi": -60, "heap_free": 90000}, time.time())])
    store.close()
    devices = {d["id"]: d for d in client.get("/v1/devices?site=ecully-fablab", headers=H).json()}
    grid = devices["ecully-fablab-grid"]
    assert grid["last_seen"] == "2026-03-29T23:59:00Z"
    assert grid["buffer_depth"] == 7 and grid["health"]["rssi"] == -60
    assert grid["online"] is False  # readings were received long ago (simulated clock)


def test_instants_parse_iso_and_unix():
    assert parse_instant("from", "2026-03-28") == START
    assert parse_instant("from", "2026-03-28T01:00:00+01:00") == START
    assert parse_instant("from", str(START)) == START
    with pytest.raises(ApiProblem):
        parse_instant("from", "99999999999")
