"""`boucle bench` / `python -m bench`: every benchmark, each figure beside its ceiling
measured in the same run, written as a Markdown report with PNG plots (docs/performance.md).

The servers (Mosquitto, InfluxDB) are started on free ports by `tests/servers.py`, so the
command runs from a source checkout, where that file is.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from bench.report import Row, latency_plot, machine_info, markdown, throughput_plot

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Sizes:
    """How big each benchmark runs."""

    gateway_messages: int
    storage_points: int
    storage_messages: int
    storage_devices: int
    latency_devices: int
    latency_seconds: float
    latency_period: float
    indicator_devices: int
    indicator_days: int
    indicator_repeats: int
    indicator_raw_devices: int  # the raw path is timed at this size and extrapolated
    indicator_raw_days: int
    simulator_devices: int
    simulator_seconds: float
    publish_messages: int
    api_devices: int
    api_cold_runs: int
    api_repeats: int
    cluster_messages: int
    cluster_gateways: tuple[int, ...]


QUICK = Sizes(gateway_messages=300, storage_points=20_000, storage_messages=200, storage_devices=100,
              latency_devices=1000, latency_seconds=4, latency_period=4,
              indicator_devices=20, indicator_days=35, indicator_repeats=3,
              indicator_raw_devices=5, indicator_raw_days=3,
              simulator_devices=1000, simulator_seconds=2, publish_messages=2000,
              api_devices=20, api_cold_runs=2, api_repeats=3, cluster_messages=300, cluster_gateways=(1,))
FULL = Sizes(gateway_messages=20_000, storage_points=500_000, storage_messages=5000, storage_devices=1000,
             latency_devices=1000, latency_seconds=60, latency_period=10,
             indicator_devices=1000, indicator_days=365, indicator_repeats=20,
             indicator_raw_devices=50, indicator_raw_days=28,
             simulator_devices=10_000, simulator_seconds=20, publish_messages=50_000,
             api_devices=1000, api_cold_runs=5, api_repeats=20, cluster_messages=20_000, cluster_gateways=(1, 2))


@dataclass
class Outcome:
    rows: list[Row]
    data: dict


Benchmark = Callable[[Sizes, Path], Outcome]


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else ("es" if noun.endswith("s") else "s"))


def _gateway(sizes: Sizes, workdir: Path) -> Outcome:
    from bench.gateway_bench import bench_gateway, bench_paho_ceiling, bench_signature_check

    rows, runs, ceilings, bare_two = [], [], {}, {}
    for rpp in (1, 10):
        ceilings[rpp] = bench_paho_ceiling(rpp, sizes.gateway_messages, workdir)["readings_per_s"]
        bare_two[rpp] = bench_paho_ceiling(rpp, sizes.gateway_messages, workdir, processes=2)["readings_per_s"]
        for processes in (1, 2):
            got = bench_gateway(processes, rpp, sizes.gateway_messages, workdir)
            runs.append({**got, "readings_per_payload": rpp, "processes": processes})
            per_process = got["readings_per_s"] / processes
            rows.append(Row("gateway", f"ingest, {_n(processes, 'process')}, {_n(rpp, 'reading')}/payload",
                            got["readings_per_s"], "readings/s", ceilings[rpp], "bare paho subscriber",
                            target="≥ 0.5 per process" + (", ≥ 1.8× one process" if processes > 1 else ""),
                            notes=f"{got['readings']:,}/{got['expected']:,} stored; "
                                  f"{per_process / ceilings[rpp]:.2f} of the ceiling per process"))
    for rpp in (1, 10):
        one, two = (next(r["readings_per_s"] for r in runs if r["processes"] == p and r["readings_per_payload"] == rpp)
                    for p in (1, 2))
        bare = bare_two[rpp] / ceilings[rpp]
        rows.append(Row("gateway", f"scale-out, 2 processes vs 1, {_n(rpp, 'reading')}/payload", two / one if one else None,
                        "×", bare, "2 bare paho subscribers vs 1", target="≥ 1.8×",
                        notes=f"two bare subscribers reach {bare:.2f}× one on this machine"))
    signatures = {}
    for rpp in (1, 10):
        cost = signatures[rpp] = bench_signature_check(rpp)
        rows.append(Row("gateway", f"parse stage, signed telemetry checked, {_n(rpp, 'reading')}/payload",
                        round(cost["signed_us"], 2), "µs/message", round(cost["unsigned_us"], 2), "unsigned",
                        target="measured", notes=f"HMAC-SHA256 check +{cost['signed_us'] - cost['unsigned_us']:.2f} "
                                                 "µs per message (one process, in memory)"))
    return Outcome(rows, {"gateway": runs, "paho_ceiling": ceilings, "paho_ceiling_2_processes": bare_two,
                          "signature_check": signatures})


def _cluster(sizes: Sizes, workdir: Path) -> Outcome:
    from bench.cluster_bench import bench_paths

    runs = bench_paths(sizes.cluster_messages, 1, workdir, sizes.cluster_gateways)
    by = {(r["broker"], r["processes"]): r for r in runs}
    rows = []
    for processes in sizes.cluster_gateways:
        cluster, mosquitto = by["cluster", processes], by["mosquitto", processes]
        rows.append(Row("cluster", f"ingest through 3 NATS nodes (JetStream), {_n(processes, 'gateway')}, 1 reading/payload",
                        cluster["readings_per_s"], "readings/s", mosquitto["readings_per_s"],
                        f"one Mosquitto, {_n(processes, 'gateway')}",
                        notes=f"{cluster['readings']:,}/{cluster['expected']:,} stored; "
                              f"{cluster['gateway_readings_per_cpu_s'] or 0:,.0f} readings per gateway CPU-second"))
    cluster, mosquitto = by["cluster", 1], by["mosquitto", 1]
    rows.append(Row("cluster", "broker: QoS 1 messages accepted per CPU-second (all 3 nodes, R3)",
                    cluster["broker_messages_per_cpu_s"], "messages/s", mosquitto["broker_messages_per_cpu_s"],
                    "one Mosquitto, per CPU-second",
                    notes=f"accepted {cluster['published_messages_per_s']:,.0f} messages/s from 12 connections "
                          f"(Mosquitto {mosquitto['published_messages_per_s']:,.0f}); the publishers share the cores"))
    return Outcome(rows, {"cluster": runs})


def _storage(sizes: Sizes, workdir: Path) -> Outcome:
    from bench.storage_bench import bench_storage

    got = bench_storage(sizes.storage_points, sizes.storage_messages, 10, sizes.storage_devices, workdir)
    c, g = got["ceiling"], got["gateway"]
    return Outcome([
        Row("storage", "InfluxDB raw write ceiling, line-protocol batches of 5,000", c["points_per_s"], "points/s",
            notes=f"{c['points']:,} points in {c['wall_s']} s"),
        Row("storage", "gateway write rate into the same InfluxDB, 10 readings/payload", g["readings_per_s"],
            "readings/s", c["points_per_s"], "raw write ceiling",
            notes=f"{g['readings']:,} readings of {g['devices']:,} devices; rollups up to date "
                  f"{g['rollups_after_s']} s later"),
    ], {"storage": got})


def _latency(sizes: Sizes, workdir: Path) -> Outcome:
    from bench.latency_bench import bench_latency

    got = bench_latency(sizes.latency_devices, sizes.latency_seconds, sizes.latency_period, workdir)
    note = (f"{got['seen']:,}/{got['published']:,} readings seen, one per device every {got['period_s']:g} s; "
            f"API poll {got['poll_p50_ms']} ms (resolution)")
    return Outcome([
        Row("latency", f"publish → visible in the API, p50, {got['devices']:,} devices", got["p50_ms"], "ms",
            got["mqtt_p50_ms"], "MQTT delivery p50", notes=note),
        Row("latency", f"publish → visible in the API, p99, {got['devices']:,} devices", got["p99_ms"], "ms",
            got["mqtt_p99_ms"], "MQTT delivery p99", notes=f"max {got['max_ms']} ms"),
    ], {"latency": got})


def _indicators(sizes: Sizes, workdir: Path) -> Outcome:
    from bench.indicators_bench import bench_indicators

    got = bench_indicators(sizes.indicator_devices, sizes.indicator_days, workdir, sizes.indicator_repeats,
                           sizes.indicator_raw_devices, sizes.indicator_raw_days)
    rollups, raw = got["rollups"], got["raw"]
    label = f"full indicator set, one territory, {got['days']} days, {got['devices']:,} devices"
    how = (f"raw extrapolated from {raw['measured_devices']} devices × {raw['measured_days']} days "
           f"({raw['measured_p50_ms']} ms)" if raw.get("extrapolated") else "raw measured at full size")
    rows = [
        Row("indicators", f"{label}, p50 from rollups", rollups["p50_ms"], "ms", raw["p50_ms"],
            "same query from raw readings", target="< 200 ms (1,000 devices, 1 year)",
            notes=f"{how}; first run {rollups['first_ms']} ms, cache hit {rollups['cached_p50_ms']} ms"),
        Row("indicators", f"{label}, p99 from rollups", rollups["p99_ms"], "ms", raw["p99_ms"],
            "same query from raw readings", notes=f"{rollups['runs']} runs"),
    ]
    local = got.get("rollups_local_time")
    if local:
        rows += [
            Row("indicators", f"{label}, p50 from rollups, days in local time (UTC+1)", local["p50_ms"], "ms",
                raw["p50_ms"], "same query from raw readings", target="< 200 ms (1,000 devices, 1 year)",
                notes=f"partial UTC days at both edges; {local['runs']} runs"),
            Row("indicators", f"{label}, p99 from rollups, days in local time (UTC+1)", local["p99_ms"], "ms",
                raw["p99_ms"], "same query from raw readings", notes=f"{local['runs']} runs"),
        ]
    influx = got.get("influxdb")
    if influx:
        rows += _indicator_influx_rows(label, rollups, local, influx)
    return Outcome(rows, {"indicators": got})


def _indicator_influx_rows(label: str, sqlite: dict, sqlite_local: dict | None, influx: dict) -> list[Row]:
    """The same rollups on InfluxDB, each figure beside SQLite's in the same run."""
    target = "< 200 ms p50, < 400 ms p99, ≤ 1.5× SQLite"
    same = "values equal SQLite's" if not influx["values_differing_sqlite_vs_influxdb"] else \
        f"values DIFFER from SQLite's: {sorted(influx['values_differing_sqlite_vs_influxdb'])}"
    cached, aw = influx["rollups"], influx["after_write"]
    rows = [
        Row("indicators", f"{label}, p50 on InfluxDB (API's rollup cache)", cached["p50_ms"], "ms",
            sqlite["p50_ms"], "SQLite p50, same run", target=target,
            notes=f"{same}; p99 {cached['p99_ms']} ms; first run (cache empty) {cached['first_ms']} ms"),
    ]
    local = influx.get("rollups_local_time")
    if local and sqlite_local:
        rows.append(Row("indicators", f"{label}, p50 on InfluxDB, days in local time (UTC+1)", local["p50_ms"], "ms",
                        sqlite_local["p50_ms"], "SQLite p50, same run", target=target,
                        notes=f"p99 {local['p99_ms']} ms"))
    rows += [
        Row("indicators", f"{label}, p50 on InfluxDB after a gateway round of every device (its current day)",
            aw["p50_ms"], "ms", influx["sqlite_after_write"]["p50_ms"], "SQLite p50 after the same writes",
            target=target,
            notes=f"p99 {aw['p99_ms']} ms; values equal SQLite's: {influx['after_write_values_equal_sqlite']}"),
        Row("indicators", f"{label}, p50 on InfluxDB after late data in every day of every device's month",
            influx["after_month_rewrite"]["p50_ms"], "ms", influx["sqlite_after_month_rewrite"]["p50_ms"],
            "SQLite p50 after the same writes",
            notes=f"p99 {influx['after_month_rewrite']['p99_ms']} ms; values equal SQLite's: "
                  f"{influx['after_month_rewrite_values_equal_sqlite']}"),
        Row("indicators", f"{label}, p50 on InfluxDB without the rollup cache", influx["no_cache"]["p50_ms"], "ms",
            sqlite["p50_ms"], "SQLite p50, same run", notes=f"{influx['no_cache']['runs']} runs"),
    ]
    return rows


def _api(sizes: Sizes, workdir: Path) -> Outcome:
    from bench.api_bench import bench_api

    got = bench_api(sizes.api_devices, sizes.api_cold_runs, sizes.api_repeats, workdir)
    label = f"GET /v1/territories/{{id}}/indicators, default period, {got['devices']:,} devices"
    rows = []
    for timing, what in (("cold", "first request after start"), ("after_write", "after the gateway wrote"),
                         ("cached", "result cache hit")):
        i, s = got["influxdb"][timing], got["sqlite"][timing]
        rows.append(Row("api", f"{label}, InfluxDB, {what}, p50", i["p50_ms"], "ms", s["p50_ms"],
                        "SQLite p50, same run",
                        target="< 200 ms p50, < 400 ms p99, ≤ 1.5× SQLite" if timing == "after_write" else "",
                        notes=f"p99 {i['p99_ms']} ms (SQLite {s['p99_ms']} ms); "
                                                      f"{i['runs']} runs; values equal: {got['values_equal']}"))
    return Outcome(rows, {"api": got})


def _simulator(sizes: Sizes, workdir: Path) -> Outcome:
    from bench.publisher import Publisher, payloads, write_registry
    from bench.simulator_bench import bench_simulator
    from tests.servers import Mosquitto

    broker = Mosquitto(workdir / "mosquitto-publish").start()
    try:  # ceiling: one bare paho client publishing pre-encoded single-reading payloads, QoS 1, acked
        devices = write_registry(workdir / "publish-registry.toml", 1000)
        messages = list(payloads(devices, 1, sizes.publish_messages, 1735689600))
        publisher = Publisher(broker.port, "boucle-bench-publish-ceiling")
        t0 = time.perf_counter()
        for topic, payload in messages:
            publisher.publish(topic, payload)
        publisher.wait()
        ceiling = len(messages) / (time.perf_counter() - t0)
        publisher.close()
        got = bench_simulator(sizes.simulator_devices, sizes.simulator_seconds, mqtt_port=broker.port)
    finally:
        broker.stop()
    rt = got["real_time"]
    sustained = got["devices"] * rt["headroom"]
    return Outcome([
        Row("simulator", "devices sustained in real time by one process (1 reading/min)", sustained, "devices",
            ceiling * 60, "bare paho publisher × 60", target="≥ 10,000",
            notes=f"measured with {got['devices']:,} devices: {rt['readings_per_s']:,} readings/s, "
                  f"{rt['cpu_pct_at_real_time']}% CPU at real time; RSS {got['max_rss_mb']} MB"),
        Row("simulator", "backfill, 10 readings/payload", got["backfill"]["readings_per_s"], "readings/s",
            notes=f"{got['backfill']['cpu_pct']}% CPU"),
    ], {"simulator": got, "publish_ceiling_per_s": ceiling})


def _firmware(sizes: Sizes, workdir: Path) -> Outcome:
    from tests.firmware.measure import (
        HEAP_BUDGET,
        HEAP_IN_USE_BUDGET,
        measure_firmware,
        measure_unix_port,
    )

    got = measure_firmware()
    unix = measure_unix_port()
    got["unix_port"] = unix
    return Outcome([
        Row("firmware", "app compiled to .mpy (xtensawin), total", got["mpy_bytes"], "bytes",
            got["mpy_budget_bytes"], "budget", target="≤ budget", notes=f"{len(got['mpy_files'])} modules"),
        Row("firmware", "heap allocated per device cycle (MicroPython wasm, in-memory link)",
            got["heap_per_cycle_bytes"], "bytes", got["heap_budget_bytes"], "budget", target="≤ budget"),
        Row("firmware", "app compiled to .mpy (mpy-cross 1.28, unix port)", unix["mpy_bytes"], "bytes",
            got["mpy_budget_bytes"], "budget", target="≤ budget"),
        Row("firmware", "heap per cycle, unix port, MQTT over a socket (QoS 1 + PUBACK, poll)",
            unix["heap_per_cycle_mqtt_bytes"], "bytes", HEAP_BUDGET, "budget", target="≤ budget"),
        Row("firmware", "heap per cycle, unix port, MQTT over TLS", unix["heap_per_cycle_tls_bytes"], "bytes",
            HEAP_BUDGET, "budget", target="≤ budget"),
        Row("firmware", "heap in use once started, unix port, MQTT", unix["heap_in_use_mqtt_bytes"], "bytes",
            HEAP_IN_USE_BUDGET, "budget", target="≤ budget", notes="app .mpy loaded, connected, collected"),
        Row("firmware", "heap in use once started, unix port, TLS", unix["heap_in_use_tls_bytes"], "bytes",
            HEAP_IN_USE_BUDGET, "budget", target="≤ budget", notes="mbedtls on the GC heap (as on the unix port)"),
        *(_signing_row(unix["signing"], name, what) for name, what in (
            ("one", "one reading"), ("batch", "a 48-reading replay batch"))),
    ], {"firmware": got})


def _signing_row(cost: dict, name: str, what: str) -> Row:
    """A signed telemetry encode against the unsigned one, in the same run (measure.signing_cost)."""
    plain, signed = cost[f"{name}_plain"], cost[f"{name}_signed"]
    return Row("firmware", f"encode + HMAC-SHA256 signature, unix port, {what}", round(signed["us"], 1), "µs",
               round(plain["us"], 1), "unsigned encode", target="measured",
               notes=f"signature +{signed['us'] - plain['us']:.1f} µs, +{signed['heap'] - plain['heap']} B heap "
                     f"per message ({signed['bytes']} B payload); the signer keeps {cost['signer_bytes']} B")


# The simulator runs first: its memory figure is this process's peak RSS.
BENCHMARKS: dict[str, Benchmark] = {
    "simulator": _simulator, "gateway": _gateway, "cluster": _cluster, "storage": _storage, "latency": _latency,
    "indicators": _indicators, "api": _api, "firmware": _firmware,
}


def _require_checkout() -> None:
    """tests/servers.py starts the real servers; it lives in the source checkout only."""
    if not (REPO / "tests" / "servers.py").exists():
        from boucle.cli import UserError

        raise UserError(f"no tests/servers.py beside {REPO}: run boucle bench from a source checkout of Boucle")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


def run_benchmarks(sizes: Sizes, out: Path, only: list[str], mode: str, console: Console) -> list[Row]:
    """Run the chosen benchmarks, write report.md, results.json and the plots into `out`."""
    _require_checkout()
    out.mkdir(parents=True, exist_ok=True)
    started, t0 = datetime.now(UTC), time.monotonic()
    rows: list[Row] = []
    data: dict = {"sizes": sizes.__dict__}
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress, \
            tempfile.TemporaryDirectory(prefix="boucle-bench-") as tmp:
        task = progress.add_task("benchmarks", total=len(only))
        for name in only:
            progress.update(task, description=f"{name:<10}")
            workdir = Path(tmp) / name
            workdir.mkdir()
            try:
                outcome = BENCHMARKS[name](sizes, workdir)
                rows += outcome.rows
                data.update(outcome.data)
            except Exception as exc:  # noqa: BLE001 - one failed benchmark must not hide the others
                console.print(f"[red]{name} failed:[/red] {exc}")
                (out / f"{name}-error.txt").write_text(traceback.format_exc())
                rows.append(Row(name, name, None, "", error=f"{type(exc).__name__}: {exc}"))
            progress.advance(task)
    plots = _plots(out, data)
    machine = machine_info()
    (out / "results.json").write_text(json.dumps(
        {"mode": mode, "started": started.isoformat(), "machine": machine,
         "rows": [r.as_dict() for r in rows], "data": data}, indent=2, default=str))
    (out / "report.md").write_text(markdown(rows, machine, plots, mode, started, time.monotonic() - t0))
    return rows


def _plots(out: Path, data: dict) -> dict[str, str]:
    plots = {}
    if "gateway" in data:
        throughput_plot(out / "throughput.png", data["gateway"], data["paho_ceiling"])
        plots["throughput.png"] = "Gateway throughput vs processes"
    if "latency" in data:
        lat = data["latency"]
        latency_plot(out / "latency.png", lat["latencies_ms"], lat["p50_ms"], lat["p99_ms"], lat["mqtt_p50_ms"])
        plots["latency.png"] = "Latency distribution"
    return plots


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("bench-report"),
                        help="folder for report.md, results.json and the PNG plots (default: bench-report)")
    parser.add_argument("--quick", action="store_true", help="one-minute smoke run: small sizes, every benchmark")
    parser.add_argument("--only", action="append", choices=list(BENCHMARKS),
                        help="run only this benchmark (repeatable)")


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    sizes = QUICK if args.quick else FULL
    only = [name for name in BENCHMARKS if not args.only or name in args.only]
    mode = "quick" if args.quick else "full"
    rows = run_benchmarks(sizes, args.out, only, mode, console)
    console.print(f"report: {args.out / 'report.md'}")
    failed = [r.bench for r in rows if r.error]
    if failed:
        console.print(f"[red]failed: {', '.join(failed)}[/red] (tracebacks in {args.out}/*-error.txt)")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    from boucle.cli import main as boucle_main

    return boucle_main(["bench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
