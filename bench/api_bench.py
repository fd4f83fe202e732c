"""API end-to-end benchmark: `GET /v1/territories/{id}/indicators` for the default period
(the last 30 days) over HTTP, from a real uvicorn, on InfluxDB and on the embedded SQLite
store holding the same rollups, in the same run.

    .venv/bin/python -m bench.api_bench --devices 1000

Data: `bench.indicators_bench`'s synthetic rollups of one territory (generated registry,
10 devices a site) written through the store API for the UTC days from 32 days ago to the
end of today (month rows, and day rows of every day), as the gateway leaves them: the
default period starts and ends inside days, read from their day rows.

Timings, wall time on the client (httpx, one keep-alive connection), the whole request:
admission, scope check, data version, computation, JSON:
- cold: the first request to a freshly built app (empty result cache, empty rollup cache:
  what the first dashboard view after a restart waits), `cold_runs` times;
- after a write: each request follows a gateway round of every device (today's rows
  written again, today's values changed; the month rows, which hold the closed days, stay:
  what the gateway does every few seconds): the result cache misses, the rollup cache
  reads what changed;
- cached: the same request again, answered from the result cache (`X-Cache: hit`).
Nothing here is a test: numbers are returned, never asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.indicators_bench import (
    bench_registry,
    current_month,
    rewrite_current_day,
    timing_stats,
    write_rollups,
)
from boucle.registry import ApiKey, RegistryFile, hash_key
from boucle.rollup import DAY, day_start
from boucle.settings import ApiSettings, load_settings
from boucle.storage import open_store
from cloud.app import create_app
from cloud.serve import ServerThread
from simulator.generate import generate_registry

KEY = "bk_bench_api_territory_key"


def _serve(store_url: str, registry: Path, territory: str) -> ServerThread:
    from tests.servers import free_port

    port = free_port()
    settings = load_settings(ApiSettings, {}, port=port, registry=str(registry), store_url=store_url,
                             rate_limit_per_s=0)
    app = create_app(settings, registry_file=RegistryFile(registry),
                     extra_keys=[ApiKey(id="bench-territory", sha256=hash_key(KEY), territories=(territory,))])
    server = ServerThread(app, "127.0.0.1", port).start()
    if not server.started:
        raise RuntimeError(f"the API did not start on port {port}")
    return server


def _get(client: httpx.Client, path: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = client.get(path, headers={"X-API-Key": KEY}, timeout=120)
    ms = (time.perf_counter() - t0) * 1000
    r.raise_for_status()
    return ms, r.headers.get("X-Cache", "")


def time_api(store_url: str, registry_path: Path, territory: str, writer, cold_runs: int, repeats: int) -> dict:
    """Cold, after-write and cached timings of the territory's default indicator set."""
    path = f"/v1/territories/{territory}/indicators"
    cold = []
    for _ in range(cold_runs):
        server = _serve(store_url, registry_path, territory)
        try:
            with httpx.Client(base_url=server.url) as client:
                ms, cache = _get(client, path)
                assert cache == "miss", cache
                cold.append(ms)
        finally:
            server.stop()
    server = _serve(store_url, registry_path, territory)
    try:
        with httpx.Client(base_url=server.url) as client:
            _get(client, path)
            after_write, cached = [], []
            for i in range(repeats):
                writer(i)
                ms, cache = _get(client, path)
                assert cache == "miss", cache
                after_write.append(ms)
            for _ in range(max(repeats, 20)):
                ms, cache = _get(client, path)
                assert cache == "hit", cache
                cached.append(ms)
            body = client.get(path, headers={"X-API-Key": KEY}).json()
    finally:
        server.stop()
    return {"cold": timing_stats(cold), "after_write": timing_stats(after_write), "cached": timing_stats(cached),
            "values": {v["id"]: v["value"] for v in body["indicators"]}}


def bench_api(devices: int = 1000, cold_runs: int = 5, repeats: int = 20, workdir: Path | None = None) -> dict:
    """Start InfluxDB (tests/servers.py), write the same rollups there and into SQLite, and
    time the default-period request on both."""
    from tests.servers import InfluxDB

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        folder = Path(tmp)
        sites = max(1, -(-devices // 10))
        registry_path = folder / "registry.toml"
        registry_path.write_text(generate_registry(1, sites, min(10, devices)))
        registry = bench_registry(devices)
        territory = registry.territories[0].id
        today = day_start(int(time.time()))
        start, end = today - 32 * DAY, today + DAY
        influx = InfluxDB(folder / "influxdb").start()
        try:
            urls = {"sqlite": f"sqlite:///{folder / 'api.db'}",
                    "influxdb": f"influx+http://127.0.0.1:{influx.port}/api"}
            out: dict = {"devices": len(registry.devices), "territory": territory}
            month = current_month(registry, start, end)
            for name, url in urls.items():
                store = open_store(url)
                try:
                    write_rollups(store, registry, start, end, every_day=True)

                    def writer(i: int, store=store) -> None:
                        rewrite_current_day(store, registry, month, end, seed=1 + i)

                    out[name] = time_api(url, registry_path, territory, writer, cold_runs, repeats)
                finally:
                    store.close()
        finally:
            influx.stop()
    out["values_equal"] = out["sqlite"].pop("values") == out["influxdb"].pop("values")
    for timing in ("cold", "after_write", "cached"):
        out[f"ratio_p50_{timing}"] = round(out["influxdb"][timing]["p50_ms"] / out["sqlite"][timing]["p50_ms"], 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    json.dump(bench_api(args.devices, args.cold_runs, args.repeats), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
