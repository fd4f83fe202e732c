"""The Grafana dashboards' InfluxQL against a real InfluxDB holding readings in Boucle's
schema: every panel and variable query runs without error and finds the data it shows.

Schema (the gateway's InfluxDB backend): measurement `readings`; tags device, site,
territory, kind (energy|waste), channel (energy) or stream (waste); fields energy_wh,
power_w, voltage_v, current_a, power_factor, weight_g, fill_pct, temp_c, boot, seq;
time = the reading's ts, precision seconds. The points are written as line protocol
through /write (the gateway's InfluxDB backend is not there yet).
"""

from __future__ import annotations

import itertools
import json
import re
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from boucle.registry import Registry, load_registry
from tests.deploy.stack import REPO, read_env_file

DASHBOARDS = sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json"))
DATABASE = read_env_file()["INFLUXDB_DATABASE"]
START = 1_767_225_600  # 2026-01-01T00:00:00Z
MINUTES = 120
INTERVAL = "5m"  # stands for Grafana's $__interval


def escape_tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def line(tags: dict[str, str], fields: dict[str, int | float], ts: int) -> str:
    tag_text = ",".join(f"{k}={escape_tag(v)}" for k, v in sorted(tags.items()))
    field_text = ",".join(f"{k}={v}i" if isinstance(v, int) else f"{k}={v!r}" for k, v in fields.items())
    return f"readings,{tag_text} {field_text} {ts}"


def fleet_lines(registry: Registry) -> list[str]:
    """Two hours of one-minute readings for every device of the registry, with a counter
    reset (reboot) on one meter and containers filling up past 80 %."""
    territory_of = {s.id: s.territory for s in registry.sites}
    out = []
    resets = {next(d.id for d in registry.devices if d.kind == "energy")}
    for n, device in enumerate(registry.devices):
        tags = {"device": device.id, "site": device.site, "territory": territory_of[device.site], "kind": device.kind}
        energy, boot, seq = 1000 * n, 1, 0
        for minute in range(MINUTES):
            ts = START + 60 * minute
            seq += 1
            if device.kind == "energy":
                power = 200.0 + 10 * n + 50 * (minute % 7)
                if device.id in resets and minute == MINUTES // 2:
                    energy, boot, seq = 0, boot + 1, 1
                energy += round(power / 60)
                fields = {"energy_wh": energy, "power_w": power, "voltage_v": 230.0 + minute % 3,
                          "current_a": round(power / 230, 3), "power_factor": 0.95, "boot": boot, "seq": seq}
                out.append(line({**tags, "channel": device.channel or "load"}, fields, ts))
            else:
                fill = min(100.0, 10.0 + (n % 5) * 15 + minute * 0.5)
                fields = {"weight_g": int(fill * 400), "fill_pct": fill, "temp_c": 15.0 + minute % 4,
                          "boot": boot, "seq": seq}
                out.append(line({**tags, "stream": device.stream or "residual"}, fields, ts))
    return out


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
    from tests.conftest import require_binary
    from tests.servers import InfluxDB

    require_binary("influxd", "influxdb")
    server = InfluxDB(tmp_path_factory.mktemp("influxdb")).start()
    try:
        influx(server, "/query", {"q": f'CREATE DATABASE "{DATABASE}"'}, body=b"")
        registry = load_registry(REPO / "boucle" / "examples" / "registry.toml")
        lines = fleet_lines(registry)
        influx(server, "/write", {"db": DATABASE, "precision": "s"}, body="\n".join(lines).encode())
        yield server, registry
    finally:
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
        assert has_values(series), f"panel {title!r} shows nothing: {grafana_query(query, everything)}"


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
        "channel": {d.channel for d in devices},
        "stream": {d.stream for d in devices},
    }
    for name, query in variables:
        series = run(server, grafana_query(query, {"territory": ".*"}))
        values = {row[1] for s in series for row in s["values"]}
        assert values == expected[name], name


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_panels_follow_the_chosen_territory(loaded_influxdb, path):
    """Grafana's multi-value format for a regex, `(a|b)`: the filter keeps exactly those."""
    server, registry = loaded_influxdb
    panels, variables = dashboard_queries(path)
    sites = {s.id: s for s in registry.sites}
    chosen = sorted({sites[d.site].territory for d in registry.devices if d.kind == path.stem})[:1]
    choice = {name: ".*" for name, _ in variables} | {"territory": f"({'|'.join(chosen)})"}
    allowed = {d.id for d in registry.devices if sites[d.site].territory in chosen}
    for title, query in panels:
        series = run(server, grafana_query(query, choice))
        assert has_values(series), title
        for s in series:
            device = s.get("tags", {}).get("device")
            assert device is None or device in allowed, f"{title}: {device} is outside {chosen}"


def test_energy_in_the_period_counts_a_counter_reset_once(loaded_influxdb):
    """The stat panel's sum of counter increases equals the written increases: the reset
    meter's drop to zero is not counted as negative energy."""
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
