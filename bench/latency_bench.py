"""End-to-end latency: a device publishes a reading → the API shows it, at N devices.

    .venv/bin/python -m bench.latency_bench --devices 1000 --seconds 60 --period 10

Method: a generated registry of `devices` devices; a real Mosquitto; the gateway as its
own process (`python -m boucle gateway`, embedded SQLite store, as `boucle up` runs it);
the API on a real uvicorn in this process over the same store. Every device publishes
one reading (QoS 1) every `period` seconds, spread evenly over the period, stamped with
the second it is published. A poller calls `GET /v1/devices` back to back; a reading is
visible when its device's `last_seen` reaches the reading's timestamp, and its latency is
the time from just before `publish()` to the end of the API response that first showed it
(so it includes one API response; `poll_p50_ms` is that response's own duration, the
resolution). Beside it, the floor: a bare paho subscriber on the same broker timing the
same messages publish → delivery. Nothing here is a test: numbers are returned.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import uvicorn
from boucle_fw.protocol import encode_batch, encode_reading, topic

from bench.publisher import PREFIX, Publisher, reading, write_registry
from boucle.mqtt import close_session, open_session
from boucle.registry import ApiKey, RegistryFile, hash_key
from boucle.settings import ApiSettings, MqttSettings, load_settings
from cloud.app import create_app

KEY = "bk_bench-admin-key"
REPO = Path(__file__).resolve().parent.parent


def percentiles(values_ms: list[float]) -> dict:
    """p50, p99 and max of a list of milliseconds (empty: None)."""
    if not values_ms:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    a = np.asarray(values_ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 1), "p99_ms": round(float(np.percentile(a, 99)), 1),
            "max_ms": round(float(a.max()), 1)}


def _epoch(iso: str | None) -> int | None:
    return None if iso is None else int(datetime.fromisoformat(iso).timestamp())


def _start_gateway(port: int, registry: Path, workdir: Path) -> tuple[subprocess.Popen, int]:
    from tests.servers import free_port

    metrics = free_port()
    env = {**os.environ, "BOUCLE_MQTT_PORT": str(port), "BOUCLE_REGISTRY": str(registry),
           "BOUCLE_STORE_URL": f"sqlite:///{workdir / 'boucle.db'}", "BOUCLE_SPOOL_PATH": str(workdir / "spool.db"),
           "BOUCLE_CLIENT_ID": "boucle-bench-latency", "BOUCLE_METRICS_PORT": str(metrics)}
    proc = subprocess.Popen([sys.executable, "-m", "boucle", "gateway"], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=(workdir / "gateway.log").open("ab"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {proc.returncode}; see {workdir / 'gateway.log'}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/healthz", timeout=1) as r:
                if json.loads(r.read()).get("mqtt_connected"):
                    return proc, metrics
        except OSError:
            pass
        time.sleep(0.1)
    proc.terminate()
    raise TimeoutError("gateway not connected to the broker within 30 s")


def _start_api(registry: Path, workdir: Path) -> tuple[uvicorn.Server, threading.Thread, str]:
    from tests.servers import free_port

    port = free_port()
    settings = load_settings(ApiSettings, {}, port=port, registry=str(registry), rate_limit_per_s=0,
                             store_url=f"sqlite:///{workdir / 'boucle.db'}")
    app = create_app(settings, registry_file=RegistryFile(registry),
                     extra_keys=[ApiKey(id="bench-admin", sha256=hash_key(KEY), admin=True)])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    server.install_signal_handlers = lambda: None
    thread = threading.Thread(target=server.run, name="bench-api", daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


class Visibility:
    """Publish times of (device, ts), and when each was first seen by the API and by MQTT."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent: dict[tuple[str, int], float] = {}
        self.pending: dict[str, list[tuple[int, float]]] = {}  # per device, not yet seen by the API
        self.api_ms: dict[tuple[str, int], float] = {}
        self.mqtt_ms: dict[tuple[str, int], float] = {}
        self.poll_ms: list[float] = []

    def poll(self, client: httpx.Client, stop: threading.Event) -> None:
        newest: dict[str, int] = {}
        while not stop.is_set():
            t0 = time.perf_counter()
            devices = client.get("/v1/devices").raise_for_status().json()
            now = time.perf_counter()
            self.poll_ms.append(1000 * (now - t0))
            with self.lock:
                for d in devices:
                    ts = _epoch(d["last_seen"])
                    if ts is None or ts <= newest.get(d["id"], -1):
                        continue
                    newest[d["id"]] = ts
                    waiting = self.pending.get(d["id"], [])
                    for sent_ts, sent_at in [p for p in waiting if p[0] <= ts]:
                        self.api_ms[(d["id"], sent_ts)] = 1000 * (now - sent_at)
                    self.pending[d["id"]] = [p for p in waiting if p[0] > ts]

    def on_mqtt(self, _client, _userdata, message) -> None:
        now = time.perf_counter()
        doc = json.loads(message.payload)
        key = (doc["device"], doc["readings"][0]["ts"])
        with self.lock:
            if key in self.sent and key not in self.mqtt_ms:
                self.mqtt_ms[key] = 1000 * (now - self.sent[key])


def measure(mqtt_port: int, devices: dict[str, str], base_url: str, seconds: float, period: float,
            settle: float = 30) -> dict:
    """Publish every `period` s from each device for `seconds`; latencies as seen by the API."""
    vis = Visibility()
    floor = open_session(load_settings(MqttSettings, {}, mqtt_port=mqtt_port), "boucle-bench-floor",
                         persistent=False, on_message=vis.on_mqtt,
                         on_connect=lambda c, _p: c.subscribe(f"{PREFIX}/+/telemetry", qos=1))
    publisher = Publisher(mqtt_port, "boucle-bench-latency-devices")
    stop = threading.Event()
    client = httpx.Client(base_url=base_url, headers={"X-API-Key": KEY}, timeout=30)
    poller = threading.Thread(target=vis.poll, args=(client, stop), name="bench-poller", daemon=True)
    poller.start()
    ids = list(devices)
    rounds = max(1, round(seconds / period))
    gap = period / len(ids)
    start = time.perf_counter() + 0.5
    try:
        for r in range(rounds):
            for i, device in enumerate(ids):
                delay = start + r * period + i * gap - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                ts = int(time.time())
                payload = encode_batch(device, 1, [encode_reading(reading(devices[device], r, ts))])
                with vis.lock:
                    vis.sent[(device, ts)] = sent_at = time.perf_counter()
                    vis.pending.setdefault(device, []).append((ts, sent_at))
                publisher.publish(topic(PREFIX, device, "telemetry"), payload)
        publisher.wait()
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            with vis.lock:
                if len(vis.api_ms) >= len(vis.sent):
                    break
            time.sleep(0.1)
    finally:
        stop.set()
        poller.join(30)
        client.close()
        publisher.close()
        close_session(floor)
    api = list(vis.api_ms.values())
    mqtt = percentiles(list(vis.mqtt_ms.values()))
    return {"devices": len(ids), "period_s": period, "rounds": rounds, "published": len(vis.sent),
            "seen": len(api), "unseen": len(vis.sent) - len(api), **percentiles(api),
            "mqtt_p50_ms": mqtt["p50_ms"], "mqtt_p99_ms": mqtt["p99_ms"],
            "poll_p50_ms": percentiles(vis.poll_ms)["p50_ms"], "polls": len(vis.poll_ms),
            "latencies_ms": [round(v, 2) for v in api]}


def bench_latency(n_devices: int = 1000, seconds: float = 60, period: float = 10,
                  workdir: Path | None = None) -> dict:
    """Start Mosquitto, the gateway and the API, then measure publish → visible in the API."""
    if period < 2:
        raise ValueError("period must be at least 2 s: readings are stamped to the second")
    from tests.servers import Mosquitto

    with tempfile.TemporaryDirectory(prefix="boucle-latencybench-") as tmp:
        root = Path(workdir or tmp)
        root.mkdir(parents=True, exist_ok=True)
        registry = root / "registry.toml"
        devices = write_registry(registry, n_devices)
        broker = Mosquitto(root / "mosquitto").start()
        gateway = server = thread = None
        try:
            gateway, _ = _start_gateway(broker.port, registry, root)
            server, thread, base = _start_api(registry, root)
            return measure(broker.port, devices, base, seconds, period)
        finally:
            if server is not None:
                server.should_exit = True
                thread.join(10)
            if gateway is not None:
                gateway.terminate()
                gateway.wait(60)
            broker.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long devices publish")
    parser.add_argument("--period", type=float, default=10.0, help="seconds between a device's readings (>= 2)")
    args = parser.parse_args(argv)
    print(f"latency bench: {args.devices:,} devices, one reading each every {args.period:g} s "
          f"for {args.seconds:g} s...", file=sys.stderr)
    result = bench_latency(args.devices, args.seconds, args.period)
    result.pop("latencies_ms")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
