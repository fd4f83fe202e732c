"""Simulator benchmark: how many readings a second one process generates, encodes and
publishes (acknowledged by a real Mosquitto), with its CPU and memory, for N devices.

    .venv/bin/python -m bench.simulator_bench --devices 10000 --seconds 20

Two phases on the same fleet size, each `seconds` long:
- real time equivalent: one reading per payload (what `--speed 1` sends), paced as fast
  as possible; `headroom` is how many times faster than real time (N readings a minute)
  it runs, so 10,000 devices in real time need headroom > 1 and use 1/headroom of the CPU;
- backfill: `--speed 0 --batch 10`, readings per second sustained.
Nothing here is a test: numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

from boucle.settings import SimulatorSettings, load_settings
from simulator.generate import generate_registry
from simulator.run import run_simulation

PAST = 1735689600  # 2025-01-01 00:00 UTC: far enough back that no phase catches up with now


def registry_for(n_devices: int, seed: int = 1) -> str:
    """A generated registry of about `n_devices` (10 per site, up to 100 sites per territory)."""
    per_site = min(10, n_devices)
    sites = math.ceil(n_devices / per_site)
    territories = math.ceil(sites / 100)
    return generate_registry(territories, math.ceil(sites / territories), per_site, seed)


def _phase(settings: SimulatorSettings, workdir: Path, seconds: float, batch: int, name: str, devices: int) -> dict:
    """Run `seconds` of simulation; rates count from the first step (after the registry is
    loaded, the fleet built and every device's birth message published)."""
    stop = threading.Event()
    marks = {"loop": 0.0, "cpu": 0.0}

    def hook(topic: str, _payload: bytes) -> None:
        if topic.endswith("/status") and not marks.get("stepping"):
            marks["loop"], marks["cpu"] = time.monotonic(), time.process_time()
        else:
            marks["stepping"] = True

    timer = threading.Timer(seconds, stop.set)
    timer.start()
    try:
        report = run_simulation(settings, start=PAST, end=None, speed=0, batch=batch,
                                state_path=workdir / f"{name}-state.json", stop=stop, publish_hook=hook)
    finally:
        timer.cancel()
    wall, cpu = time.monotonic() - marks["loop"], time.process_time() - marks["cpu"]
    payloads = report.payloads - devices  # without the birth messages
    return {"readings": report.readings, "wall_s": round(wall, 2),
            "readings_per_s": round(report.readings / wall), "payloads_per_s": round(payloads / wall),
            "cpu_pct": round(100 * cpu / wall, 1), "simulated_minutes": (report.end - report.start) // 60}


def bench_simulator(n_devices: int, seconds: float, mqtt_port: int | None = None) -> dict:
    """Measure the simulator with `n_devices` for `seconds` per phase against a Mosquitto
    (a fresh one from tests.servers when `mqtt_port` is None). Returns the numbers."""
    with tempfile.TemporaryDirectory(prefix="boucle-simbench-") as tmp:
        workdir = Path(tmp)
        broker = None
        if mqtt_port is None:
            from tests.servers import Mosquitto

            broker = Mosquitto(workdir / "mosquitto").start()
            mqtt_port = broker.port
        try:
            registry = workdir / "registry.toml"
            registry.write_text(registry_for(n_devices))
            settings = load_settings(SimulatorSettings, {}, registry=str(registry), mqtt_port=mqtt_port,
                                     ledger=str(workdir / "ledger.jsonl"))
            t0 = time.monotonic()
            from boucle.registry import load_registry

            devices = len(load_registry(registry).devices)
            load_s = time.monotonic() - t0
            realtime = _phase(settings, workdir, seconds, 1, "realtime", devices)
            backfill = _phase(settings, workdir, seconds, 10, "backfill", devices)
        finally:
            if broker is not None:
                broker.stop()
    needed = devices / 60
    return {
        "devices": devices,
        "registry_load_s": round(load_s, 2),
        "real_time": {**realtime, "needed_readings_per_s": round(needed, 1),
                      "headroom": round(realtime["readings_per_s"] / needed, 1),
                      "cpu_pct_at_real_time": round(realtime["cpu_pct"] * needed / realtime["readings_per_s"], 1)},
        "backfill": backfill,
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--mqtt-port", type=int, help="use this broker on 127.0.0.1 (default: start a Mosquitto)")
    args = parser.parse_args(argv)
    print(f"simulator bench: {args.devices:,} devices, {args.seconds:g} s per phase...", file=sys.stderr)
    print(json.dumps(bench_simulator(args.devices, args.seconds, args.mqtt_port), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
