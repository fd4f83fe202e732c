"""Storage benchmark: InfluxDB's raw write ceiling beside the gateway's write rate into it.

    .venv/bin/python -m bench.storage_bench --points 200000 --messages 5000

Both figures are taken on the same InfluxDB server in the same run:
- ceiling: pre-built line-protocol batches of 5,000 points (the gateway's schema: tags
  device/site/territory/kind/channel, fields of a reading) written synchronously through
  `InfluxStore.write_lines`, one batch after another, into a database of their own;
- gateway: `messages` QoS 1 telemetry messages are queued on the gateway's persistent
  session while it is stopped, then the gateway starts (store_url influx+http://...) and
  the clock runs until its `readings_stored` counter reaches every reading: broker →
  spool (SQLite, fsync) → parse → dedup → InfluxDB. Rollups are recomputed alongside;
  `rollups_after_s` is how long the aggregator still needed once every reading was stored.
Nothing here is a test: numbers are returned, never asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from bench.publisher import Publisher, payloads, write_registry
from boucle.settings import GatewaySettings, load_settings
from boucle.storage.influx import InfluxStore
from gateway.service import Gateway

RAW_BATCH = 5_000
START_TS = 1735689600  # 2025-01-01 00:00 UTC


def raw_lines(points: int, n_devices: int = 1000, start_ts: int = START_TS) -> list[str]:
    """`points` line-protocol readings shaped like the gateway's, spread over `n_devices`."""
    lines = []
    for i in range(points):
        d, k = i % n_devices, i // n_devices
        lines.append(f"readings,device=dev-{d:05d},site=site-{d // 10:04d},territory=t{d // 1000:03d},"
                     f"kind=energy,channel=grid_import energy_wh={1000 + 10 * k}i,power_w={600 + k % 50}.0,"
                     f"boot=1i,seq={k}i,received={start_ts + 60 * k}.0 {start_ts + 60 * k}")
    return lines


def write_ceiling(influx_url: str, points: int, batch: int = RAW_BATCH) -> dict:
    """Points/s of raw line-protocol batches written synchronously to InfluxDB."""
    store = InfluxStore(influx_url, "bench_raw")
    lines = raw_lines(points)
    t0 = time.perf_counter()
    for i in range(0, len(lines), batch):
        store.write_lines(lines[i:i + batch])
    wall = time.perf_counter() - t0
    store.close()
    return {"points": points, "batch": batch, "wall_s": round(wall, 2), "points_per_s": round(points / wall)}


def _stored(gateway: Gateway) -> int:
    return int(gateway.metrics.stored._value.get())


def gateway_write_rate(mqtt_port: int, influx_url: str, messages: int, readings_per_payload: int,
                       workdir: Path, n_devices: int = 1000, timeout: float = 600) -> dict:
    """Readings/s the gateway stores into InfluxDB from a backlog of `messages` queued messages."""
    registry = workdir / "registry.toml"
    devices = write_registry(registry, n_devices)
    settings = load_settings(GatewaySettings, {}, mqtt_port=mqtt_port, registry=str(registry),
                             store_url=f"{influx_url.replace('http://', 'influx+http://')}/boucle",
                             spool_path=str(workdir / "spool.db"), metrics_port=0,
                             client_id="boucle-bench-gateway")
    Gateway(settings).start().stop()  # creates the persistent session that queues the backlog
    publisher = Publisher(mqtt_port)
    for topic, payload in payloads(devices, readings_per_payload, messages, START_TS):
        publisher.publish(topic, payload)
    publisher.wait()
    publisher.close()
    expected = messages * readings_per_payload
    t0 = time.perf_counter()
    gateway = Gateway(settings).start()
    try:
        deadline = time.monotonic() + timeout
        while _stored(gateway) < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"gateway stored {_stored(gateway)} of {expected} readings in {timeout:.0f} s")
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        while gateway.spool.dirty(1):  # devices whose rollups the aggregator has not redone yet
            if time.monotonic() > deadline:
                raise TimeoutError(f"rollups not up to date after {timeout:.0f} s")
            time.sleep(0.05)
        rollups = time.perf_counter() - t0 - wall
    finally:
        gateway.stop()
    return {"messages": messages, "readings_per_payload": readings_per_payload, "readings": expected,
            "devices": len(devices), "wall_s": round(wall, 2), "readings_per_s": round(expected / wall),
            "rollups_after_s": round(rollups, 2)}


def bench_storage(points: int, messages: int, readings_per_payload: int = 10, n_devices: int = 1000,
                  workdir: Path | None = None) -> dict:
    """Start Mosquitto and InfluxDB (tests.servers), then measure the raw write ceiling and
    the gateway's write rate into the same InfluxDB."""
    from tests.servers import InfluxDB, Mosquitto

    with tempfile.TemporaryDirectory(prefix="boucle-storagebench-") as tmp:
        root = Path(workdir or tmp)
        influx = InfluxDB(root / "influxdb").start()
        broker = Mosquitto(root / "mosquitto").start()
        try:
            ceiling = write_ceiling(influx.url, points)
            gateway = gateway_write_rate(broker.port, influx.url, messages, readings_per_payload, root, n_devices)
        finally:
            broker.stop()
            influx.stop()
    return {"ceiling": ceiling, "gateway": gateway,
            "ratio": round(gateway["readings_per_s"] / ceiling["points_per_s"], 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200_000, help="raw points for the ceiling")
    parser.add_argument("--messages", type=int, default=5_000, help="messages through the gateway")
    parser.add_argument("--readings-per-payload", type=int, default=10)
    parser.add_argument("--devices", type=int, default=1000)
    args = parser.parse_args(argv)
    print(f"storage bench: {args.points:,} raw points, {args.messages:,} gateway messages...", file=sys.stderr)
    print(json.dumps(bench_storage(args.points, args.messages, args.readings_per_payload, args.devices), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
