"""The Grafana dashboards' InfluxQL against a real InfluxDB after a short simulated run
through the real path: simulator -> Mosquitto -> `boucle gateway` -> InfluxDB. Every
panel and variable query runs without error and shows what the raw readings hold.

Schema (the gateway's InfluxDB backend): measurement `readings`; tags device, site,
territory, kind (energy|waste), channel (energy) or stream (waste); fields energy_wh,
power_w, voltage_v, current_a, power_factor, weight_g, fill_pct, temp_c, boot, seq;
time = the reading's ts, precision seconds.
"""

from __future__ import annotations

import itertools
import json
import re
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from boucle.registry import load_registry
from tests.conftest import require_binary
from tests.deploy.gateway_run import simulate_through_gateway
from tests.deploy.stack import REPO, read_env_file
from tests.servers import InfluxDB, Mosquitto

DASHBOARDS = sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json"))
DATABASE = read_env_file()["INFLUXDB_DATABASE"]
START = 1_767_225_600  # 2026-01-01T00:00:00Z
MINUTES = 120
INTERVAL = "5m"  # stands for Grafana's $__interval
FULL_CONTAINERS = "Containers at least 80 % full"
MAY_BE_EMPTY = {FULL_CONTAINERS}  # rightly empty when no container is that full


def influx(server, path: str, params: dict[str, str], body: bytes | None = None) -> dict:
    url = f"{server.url}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=30) as response:
        text = response.read()
    return json.loads(text) if text else {}


def grafana_query(query: str, variables: dict[str, str]) -> str:
    """A dashboard query as Grafana sends it: its macros and template variables replaced."""
    end = START + 60 * MINUTES
    query = query.replace("$timeFilter", f"time >= {START * 1000}ms and time <= {end * 1000}ms")
    query = query.replace("$__interval", INTERVAL)
    for name in sorted(variables, key=len, reverse=True):
        query = query.replace(f"${name}", variables[name])
    assert not re.search(r"\$\w", query), f"unreplaced macro in {query}"
    return query


def dashboard_queries(path: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(panel title, query) of every panel target, and (name, query) of every variable."""
    board = json.loads(path.read_text("utf-8"))
    panels = [(p["title"], t["query"]) for p in board["panels"] for t in p["targets"]]
    variables = [(v["name"], v["query"]) for v in board["templating"]["list"] if v["type"] == "query"]
    return panels, variables


@pytest.fixture(scope="module")
def loaded_influxdb(tmp_path_factory):
    require_binary("influxd", "influxdb")
    require_binary("mosquitto", "mosquitto")
    workdir = tmp_path_factory.mktemp("simulated-run")
    server = InfluxDB(workdir / "influxdb").start()
    broker = Mosquitto(workdir / "mosquitto").start()
    try:
        # What deploy/influxdb/init does on 2.x; on 1.x a database is created like this.
        influx(server, "/query", {"q": f'CREATE DATABASE "{DATABASE}"'}, body=b"")
        registry_path = REPO / "boucle" / "examples" / "registry.toml"
        readings = simulate_through_gateway(workdir, broker.port, server.url, DATABASE, registry_path,
                                            START, START + 60 * MINUTES)
        assert readings >= sum(60 * MINUTES // d.interval_s for d in load_registry(registry_path).devices)
        yield server, load_registry(registry_path)
    finally:
        broker.stop()
        server.stop()


def run(server, query: str) -> list[dict]:
    answer = influx(server, "/query", {"db": DATABASE, "q": query, "epoch": "s"})
    results = answer["results"]
    for result in results:
        assert "error" not in result, f"{result['error']}\n in {query}"
    return [series for result in results for series in result.get("series", [])]


def has_values(series: list[dict]) -> bool:
    return any(v is not None for s in series for row in s["values"] for v in row[1:])


def test_there_are_energy_and_waste_dashboards():
    assert [p.name for p in DASHBOARDS] == ["energy.json", "waste.json"]
    for path in DASHBOARDS:
        board = json.loads(path.read_text("utf-8"))
        assert board["uid"] and board["panels"]
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == "boucle-influxdb"
            assert all(t.get("rawQuery") for t in panel["targets"])


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_query_runs_and_shows_data(loaded_influxdb, path):
    server, _ = loaded_influxdb
    panels, variables = dashboard_queries(path)
    everything = {name: ".*" for name, _ in variables}
    for title, query in panels:
        series = run(server, grafana_query(query, everything))
        if title not in MAY_BE_EMPTY:
            assert has_values(series), f"panel {title!r} shows nothing: {grafana_query(query, everything)}"


def test_full_containers_panel_counts_what_the_raw_readings_say(loaded_influxdb):
    """Empty when no container is that full: checked against the readings, and with the
    threshold at 0 it must count every container."""
    server, _ = loaded_influxdb
    panels, variables = dashboard_queries(REPO / "deploy" / "grafana" / "dashboards" / "waste.json")
    query = grafana_query(dict(panels)[FULL_CONTAINERS], {name: ".*" for name, _ in variables})
    newest = run(server, grafana_query('SELECT last("fill_pct") FROM "readings" WHERE "kind" = \'waste\' '
                                       'AND $timeFilter GROUP BY "device"', {}))
    fills = [s["values"][0][1] for s in newest]
    assert fills, "the simulated fleet has no fill-level sensor"

    def count(q: str) -> int:
        series = run(server, q)
        return series[0]["values"][0][1] if series else 0

    assert '"f" >= 80' in query
    assert count(query) == sum(f >= 80 for f in fills)
    assert count(query.replace('"f" >= 80', '"f" >= 0')) == len(fills)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_variable_queries_list_the_registry(loaded_influxdb, path):
    server, registry = loaded_influxdb
    _, variables = dashboard_queries(path)
    kind = path.stem
    devices = [d for d in registry.devices if d.kind == kind]
    sites = {s.id: s for s in registry.sites}
    expected = {
        "territory": {sites[d.site].territory for d in registry.devices},
        "site": {d.site for d in devices},
        "channel": {d.channel for d in devices if d.channel},
        "stream": {d.stream for d in devices if d.stream},
    }
    for name, query in variables:
        series = run(server, grafana_query(query, {"territory": ".*"}))
        values = {row[1] for s in series for row in s["values"]}
        assert values == expected[name], name


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_panels_follow_the_chosen_territory(loaded_influxdb, path):
    """Grafana's multi-value format for a regex, `(a|b)`: a panel split by device or site
    shows exactly the devices or sites of the chosen territories that it shows unfiltered."""
    server, registry = loaded_influxdb
    panels, variables = dashboard_queries(path)
    sites = {s.id: s for s in registry.sites}
    chosen = sorted({sites[d.site].territory for d in registry.devices if d.kind == path.stem})[:2]
    everything = {name: ".*" for name, _ in variables}
    choice = everything | {"territory": f"({'|'.join(chosen)})"}
    allowed = {"device": {d.id for d in registry.devices if sites[d.site].territory in chosen},
               "site": {s.id for s in registry.sites if s.territory in chosen}}
    split = 0
    for title, query in panels:
        unfiltered = run(server, grafana_query(query, everything))
        filtered = run(server, grafana_query(query, choice))
        for key in ("device", "site"):
            if any(key in s.get("tags", {}) for s in unfiltered):
                split += 1
                shown = {s["tags"][key] for s in filtered}
                assert shown == {s["tags"][key] for s in unfiltered} & allowed[key], title
    assert split >= 3


def test_energy_in_the_period_is_the_sum_of_counter_increases(loaded_influxdb):
    """The stat panel's figure equals the counter increases of the raw readings, summed per
    channel; a counter that went down (reset) is skipped, never subtracted."""
    server, _ = loaded_influxdb
    panels, variables = dashboard_queries(REPO / "deploy" / "grafana" / "dashboards" / "energy.json")
    query = dict(panels)["Energy in the period by channel"]
    series = run(server, grafana_query(query, {name: ".*" for name, _ in variables}))
    got = {s["tags"]["channel"]: s["values"][0][1] for s in series}
    expected: dict[str, float] = {}
    # Recompute from the raw points: per device, the sum of non-negative steps.
    points = run(server, 'SELECT "energy_wh" FROM "readings" WHERE "kind" = \'energy\' GROUP BY "device", "channel"')
    for s in points:
        values = [row[1] for row in s["values"]]
        steps = sum(b - a for a, b in itertools.pairwise(values) if b >= a)
        expected[s["tags"]["channel"]] = expected.get(s["tags"]["channel"], 0) + steps / 1000
    assert got.keys() == expected.keys()
    for channel, kwh in got.items():
        assert kwh == pytest.approx(expected[channel])
