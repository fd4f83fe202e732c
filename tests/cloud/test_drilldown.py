"""Drill-down API: sites ranked by an indicator, device health for a technician."""

from __future__ import annotations

import csv
import io
import sqlite3
import time

import pytest
from fastapi.testclient import TestClient

from boucle.registry import HealthSettings, RegistryError, RegistryFile, load_registry
from boucle.settings import ApiSettings, load_settings
from boucle.storage import DeviceState
from boucle.storage.sqlite import SQLiteStore
from cloud.alerts.texts import LANGS
from cloud.app import create_app
from cloud.bin_forecasts import fill_now_pct, load_kg
from cloud.device_health import VISIT_TEXTS, DeviceHealth, visit_reasons
from cloud.indicators import LOW_COVERAGE
from cloud.ranking import RankedSite, rank
from tests.cloud.conftest import ADMIN, ECULLY, END, KEYS, PERIOD, make_app
from tests.cloud.readings import device_readings
from tests.conftest import EXAMPLE_REGISTRY

H = {"X-API-Key": ADMIN}


def row(site: str, value: float | None) -> RankedSite:
    return RankedSite(rank=None, site=site, name=site, value=value, indicator_value=value, coverage=1.0)


def test_rank_orders_shares_ties_and_puts_missing_values_last():
    rows = [row("a", 3.0), row("b", None), row("c", 5.0), row("d", 3.0)]
    assert [(r.site, r.rank) for r in rank(rows, "desc")] == [("c", 1), ("a", 2), ("d", 2), ("b", None)]
    assert [(r.site, r.rank) for r in rank(rows, "asc")] == [("a", 1), ("d", 1), ("c", 3), ("b", None)]


def health(**fields) -> DeviceHealth:
    base = {"id": "x", "site": "s", "kind": "energy", "online": True, "last_seen": None, "silent_s": 30,
            "interval_s": 300, "buffer_depth": 0, "dropped": 0, "rssi": -60, "coverage": 100.0, "visit": []}
    return DeviceHealth(**{**base, **fields})


def english(reasons) -> list[str]:
    return [r.messages["en"] for r in reasons]


def test_visit_reasons():
    assert visit_reasons(health()) == []
    assert english(visit_reasons(health(online=False, silent_s=3 * 86400))) == [
        "offline: no reading received for 3 days"]
    assert english(visit_reasons(health(online=False, silent_s=None))) == ["offline: never seen"]
    many = visit_reasons(health(coverage=62.0, dropped=12, buffer_depth=400, rssi=-88, error="hx711 timeout"))
    assert english(many) == ["reports an error: hx711 timeout", "coverage 62 % over the period",
                             "dropped 12 readings (buffer full)", "400 readings waiting in its buffer",
                             "weak Wi-Fi signal (-88 dBm)"]
    # language-neutral: a code and the figures it names, and its text in each language
    assert [(r.code, r.values) for r in many] == [
        ("error", {"error": "hx711 timeout"}), ("low_coverage", {"coverage": 62.0}), ("dropped", {"dropped": 12}),
        ("backlog", {"buffer_depth": 400}), ("weak_signal", {"rssi": -88})]
    assert [r.messages["fr"] for r in many] == [
        "signale une erreur : hx711 timeout", "couverture de 62 % sur la période", "12 mesures perdues (tampon plein)",
        "400 mesures en attente dans son tampon", "signal Wi-Fi faible (-88 dBm)"]
    silences = {s: visit_reasons(health(online=False, silent_s=s))[0] for s in (None, 600, 5 * 3600, 3 * 86400)}
    assert {s: (r.code, r.values) for s, r in silences.items()} == {s: ("offline", {"silent_s": s}) for s in silences}
    assert [r.messages["fr"] for r in silences.values()] == [
        "hors ligne : jamais vu", "hors ligne : aucune mesure reçue depuis 10 min",
        "hors ligne : aucune mesure reçue depuis 5 h", "hors ligne : aucune mesure reçue depuis 3 jours"]
    # a device's own words are a value, not a template: braces in them stay as they are
    assert visit_reasons(health(error="bad {rssi}"))[0].messages == {"en": "reports an error: bad {rssi}",
                                                                      "fr": "signale une erreur : bad {rssi}"}
    assert all(set(t) == set(LANGS) and t["fr"] != t["en"] for t in VISIT_TEXTS.values())


def test_ranking_equals_each_sites_own_indicator(client):
    registry = load_registry(EXAMPLE_REGISTRY)
    got = client.get("/v1/territories/ecully/ranking", params={**PERIOD, "indicator": "energy.consumed"}, headers=H)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["unit"] == "kWh" and body["order"] == "desc"
    sites = body["sites"]
    assert {s["site"] for s in sites} == {s.id for s in registry.sites_of("ecully")}
    for s in sites:
        own = client.get(f"/v1/sites/{s['site']}/indicators", params={**PERIOD, "ids": "energy.consumed"},
                         headers=H).json()["indicators"][0]
        assert s["value"] == own["value"] == s["indicator_value"]
    valued = [s["value"] for s in sites if s["value"] is not None]
    assert valued == sorted(valued, reverse=True) and len(valued) >= 3
    assert sites[0]["rank"] == 1

    per_m2 = client.get("/v1/territories/ecully/ranking", headers=H,
                        params={**PERIOD, "indicator": "energy.base_load", "per": "m2"}).json()
    assert per_m2["unit"] == "kW/m²"
    for s in per_m2["sites"]:
        if s["indicator_value"] is not None:
            assert s["value"] == pytest.approx(s["indicator_value"] / s["floor_area_m2"])
    worst_sorting = client.get("/v1/territories/ecully/ranking", headers=H,
                               params={**PERIOD, "indicator": "waste.sorting_rate", "order": "asc"}).json()["sites"]
    rates = [s["value"] for s in worst_sorting if s["value"] is not None]
    assert rates == sorted(rates)

    as_csv = client.get("/v1/territories/ecully/ranking", headers=H,
                        params={**PERIOD, "indicator": "energy.base_load", "per": "m2", "format": "csv"})
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert "ecully-ranking-energy.base_load.csv" in as_csv.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["site"] for r in table] == [s["site"] for s in per_m2["sites"]]  # the same order
    for r, s in zip(table, per_m2["sites"], strict=True):
        assert r["rank"] == ("" if s["rank"] is None else str(s["rank"]))
        assert r["value"] == ("" if s["value"] is None else repr(s["value"]))
        assert (r["name"], r["unit"], r["per"], float(r["coverage"])) == (s["name"], "kW/m²", "m2", s["coverage"])

    assert client.get("/v1/territories/ecully/ranking", params={"indicator": "energy.nope"},
                      headers=H).status_code == 422
    assert client.get("/v1/territories/zi-meyzieu/ranking", params={"indicator": "energy.consumed"},
                      headers={"X-API-Key": ECULLY}).status_code == 404


@pytest.fixture
def own_db(simulated_db, tmp_path):
    """A copy of the simulated store, to write health messages into."""
    copy = tmp_path / "boucle.db"
    with sqlite3.connect(simulated_db) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    return copy


def test_device_health_tells_which_sensor_to_visit(own_db):
    store = SQLiteStore(own_db)
    store.write_device_states([
        DeviceState("ecully-fablab-grid", "health", {"buffer_depth": 3, "dropped": 0, "rssi": -58, "fw": "0.1.0",
                                                     "boot": 4, "reset_cause": "power_on"}, time.time()),
        DeviceState("ecully-bakery-grid", "health", {"buffer_depth": 250, "dropped": 40, "rssi": -86,
                                                     "fw": "0.0.9", "boot": 9, "reset_cause": "watchdog"},
                    time.time())])
    store.close()
    with TestClient(make_app(own_db, rate_limit_per_s=1000.0, rate_limit_burst=10_000)) as client:
        got = client.get("/v1/territories/ecully/device-health", params=PERIOD, headers=H)
        assert got.status_code == 200, got.text
        body = got.json()
        coverage = client.get("/v1/territories/ecully/indicators", params={**PERIOD, "ids": "data.coverage"},
                              headers=H).json()["indicators"][0]["breakdown"]["by_device"]
        site = client.get("/v1/sites/ecully-bakery/device-health", params=PERIOD, headers=H).json()
        containers = client.get("/v1/fiware/territories/ecully/waste-containers", headers=H,
                                params={**PERIOD, "options": "keyValues"}).json()
    devices = {d["id"]: d for d in body["devices"]}
    assert set(devices) == {d.id for d in load_registry(EXAMPLE_REGISTRY).devices_of("ecully")}
    assert all(d["coverage"] == coverage[d["id"]] for d in devices.values())
    bakery = devices["ecully-bakery-grid"]
    assert (bakery["rssi"], bakery["dropped"], bakery["buffer_depth"], bakery["firmware"]) == (-86, 40, 250, "0.0.9")
    assert {"dropped 40 readings (buffer full)", "250 readings waiting in its buffer",
            "weak Wi-Fi signal (-86 dBm)"} <= set(bakery["visit"])
    # beside the English `visit`, each reason's code, values and text in each language
    assert all(d["visit"] == [r["messages"]["en"] for r in d["visit_reasons"]] for d in devices.values())
    reasons = {r["code"]: r for r in bakery["visit_reasons"]}
    assert {c: reasons[c]["values"] for c in ("dropped", "backlog", "weak_signal")} == {
        "dropped": {"dropped": 40}, "backlog": {"buffer_depth": 250}, "weak_signal": {"rssi": -86}}
    assert reasons["weak_signal"]["messages"]["fr"] == "signal Wi-Fi faible (-86 dBm)"
    assert body["devices"][0]["id"] == "ecully-bakery-grid"  # the most reasons first
    assert devices["ecully-fablab-grid"]["firmware"] == "0.1.0"
    # the readings were received long ago (the simulated clock): every device is offline
    assert all(not d["online"] and d["visit"][0].startswith("offline") for d in devices.values())
    assert body["to_visit"] == len(devices)
    # a bin's fill and load now: its newest reading, as the FIWARE WasteContainer says them
    bins = {d["id"]: d for d in devices.values() if d["kind"] == "waste"}
    fiware = {e["id"].rsplit(":", 1)[1]: e for e in containers}
    assert set(bins) == set(fiware) and any(b["fill_pct"] for b in bins.values())
    for device, b in bins.items():
        assert b["fill_pct"] == pytest.approx(fiware[device]["fillingLevel"] * 100, abs=0.05)
        assert b["weight_kg"] == fiware[device].get("cargoWeight")
    assert all(d["fill_pct"] is None and d["weight_kg"] is None for d in devices.values() if d["kind"] != "waste")
    assert {d["id"] for d in site["devices"]} == {"ecully-bakery-grid", *(
        d.id for d in load_registry(EXAMPLE_REGISTRY).devices_of_site("ecully-bakery"))}


ECULLY_COLLECTION = 'collection = { depot = [45.7790, 4.7702], round_days = "Mo-Fr", round_time = "06:00" }'


def with_health(tmp_path, table: str):
    """The example registry with Écully's `device_health` table set to `table`."""
    text = EXAMPLE_REGISTRY.read_text("utf-8")
    assert ECULLY_COLLECTION in text
    path = tmp_path / "registry.toml"
    path.write_text(text.replace(ECULLY_COLLECTION, f"{ECULLY_COLLECTION}\ndevice_health = {table}", 1), "utf-8")
    return path


def test_device_health_thresholds_are_the_territorys(own_db, tmp_path):
    assert HealthSettings().low_coverage_pct == 100 * LOW_COVERAGE  # the default is the indicators' caveat's
    reg = load_registry(EXAMPLE_REGISTRY)
    store = SQLiteStore(own_db)
    store.write_device_states([DeviceState("ecully-bakery-grid", "health", {
        "buffer_depth": 250, "dropped": 40, "rssi": -86, "fw": "0.0.9"}, time.time())])
    # a reading of every Écully and Meyzieu device received 400 s ago: more than BOUCLE_ONLINE_AFTER_S
    # (300), less than two intervals (every device sends every 300 or 900 s)
    recent = [r for t in ("ecully", "zi-meyzieu") for d in reg.devices_of(t) for r in device_readings(d, END, END + 60)]
    assert {d.interval_s for t in ("ecully", "zi-meyzieu") for d in reg.devices_of(t)} <= {300, 900}
    store.write_readings(recent, received=time.time() - 400)
    store.close()
    # Écully: a weak signal only under -90 dBm, a backlog from 300, drops from 50, offline after 2 intervals
    registry = with_health(tmp_path, "{ weak_rssi_dbm = -90, backlog_readings = 300, dropped_readings = 50, "
                                     "offline_intervals = 2 }")
    settings = load_settings(ApiSettings, {}, store_url=f"sqlite:///{own_db}", rate_limit_per_s=1000.0,
                             rate_limit_burst=10_000)
    with TestClient(create_app(settings, registry_file=RegistryFile(registry), extra_keys=KEYS)) as client:
        ecully = {d["id"]: d for d in client.get("/v1/territories/ecully/device-health", params=PERIOD,
                                                 headers=H).json()["devices"]}
        meyzieu = client.get("/v1/territories/zi-meyzieu/device-health", params=PERIOD, headers=H).json()
        listed = {d["id"]: d["online"] for d in client.get("/v1/devices", headers=H).json()}
    bakery = ecully["ecully-bakery-grid"]
    assert bakery["online"] and bakery["visit"] == bakery["visit_reasons"] == []  # -86 dBm, 250 waiting, 40 dropped: all within Écully's
    assert all(d["online"] for d in ecully.values()) and all(listed[i] for i in ecully)  # /v1/devices agrees
    # the other territories keep the defaults: offline after BOUCLE_ONLINE_AFTER_S
    assert meyzieu["devices"] and all(not d["online"] for d in meyzieu["devices"])
    assert not any(listed[d["id"]] for d in meyzieu["devices"])

    bad = with_health(tmp_path, "{ weak_rssi_dbm = 5 }")
    with pytest.raises(RegistryError) as refused:
        load_registry(bad)
    message = str(refused.value)
    assert "territories[0].device_health.weak_rssi_dbm" in message and "Fix: use a value at most 0" in message


def test_a_bins_fill_now():
    assert fill_now_pct(42.5, 9000, 60) == 42.5  # the fill sensor first
    assert fill_now_pct(None, 9000, 60) == 15.0  # else weight ÷ capacity
    assert fill_now_pct(float("nan"), 9000, 60) == 15.0
    assert fill_now_pct(None, 90_000, 60) == 100.0 and fill_now_pct(None, -20, 60) == 0.0  # clamped
    assert fill_now_pct(None, 9000, None) is None and fill_now_pct(None, None, 60) is None
    assert (load_kg(12_345), load_kg(-8), load_kg(None)) == (12.345, 0.0, None)
