"""Readings into a real InfluxDB the way the compose stack does it: the fleet simulator
publishes to a real Mosquitto, and `boucle gateway` (a subprocess configured only by
BOUCLE_* variables, as in docker-compose.yml) stores them through its InfluxDB backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from boucle.settings import SimulatorSettings, load_settings
from simulator.run import run_simulation
from tests.servers import free_port

WAIT = 60.0  # seconds: a bound on waiting for the services, never an assertion on speed


def count_stored(influx_url: str, database: str) -> int:
    query = urllib.parse.urlencode({"db": database, "q": 'SELECT count("seq") FROM "readings"'})
    with urllib.request.urlopen(f"{influx_url}/query?{query}", timeout=10) as response:
        series = json.loads(response.read())["results"][0].get("series", [])
    return int(series[0]["values"][0][1]) if series else 0


def _log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:]


def _wait_healthy(gateway: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + WAIT
    while True:
        assert gateway.poll() is None, f"boucle gateway exited:\n{_log_tail(log)}"
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            assert time.monotonic() < deadline, f"boucle gateway never healthy:\n{_log_tail(log)}"
            time.sleep(0.1)


def simulate_through_gateway(workdir: Path, broker_port: int, influx_url: str, database: str,
                             registry: Path, start: int, end: int) -> int:
    """Simulate the registry's fleet from `start` to `end` through the gateway into
    InfluxDB; return the number of readings, once all of them are stored."""
    metrics_port = free_port()
    env = {**os.environ,
           "BOUCLE_MQTT_HOST": "127.0.0.1", "BOUCLE_MQTT_PORT": str(broker_port),
           "BOUCLE_REGISTRY": str(registry), "BOUCLE_CLIENT_ID": "deploy-test-gateway",
           "BOUCLE_STORE_URL": f"influx+{influx_url}/{database}",
           "BOUCLE_SPOOL_PATH": str(workdir / "spool.db"), "BOUCLE_METRICS_PORT": str(metrics_port)}
    log_path = workdir / "gateway.log"
    with log_path.open("wb") as log:
        gateway = subprocess.Popen([sys.executable, "-m", "boucle.cli", "gateway"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        try:
            # Healthy means subscribed: the fleet's messages then wait in its session.
            _wait_healthy(gateway, f"http://127.0.0.1:{metrics_port}/healthz", log_path)
            settings = load_settings(SimulatorSettings, {}, mqtt_host="127.0.0.1", mqtt_port=broker_port,
                                     registry=str(registry), ledger=str(workdir / "ledger.jsonl"))
            report = run_simulation(settings, start=start, end=end, speed=0, batch=10,
                                    state_path=workdir / "simulator-state.json")
            deadline = time.monotonic() + WAIT
            while (stored := count_stored(influx_url, database)) < report.readings:
                assert gateway.poll() is None, f"boucle gateway exited:\n{_log_tail(log_path)}"
                assert time.monotonic() < deadline, \
                    f"{stored} of {report.readings} readings stored:\n{_log_tail(log_path)}"
                time.sleep(0.2)
            return report.readings
        finally:
            gateway.terminate()
            gateway.wait(30)
