"""Poison messages against the real gateway process and a real Mosquitto: a payload that
used to end the parser thread (JSON nested past the recursion limit, on telemetry and on
health) is dead-lettered, and the readings that follow are stored; the same payload
already in the spool at start is dead-lettered too; a stage that fails anyway is restarted
and shown in /healthz."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from boucle.settings import GatewaySettings, load_settings
from boucle.storage.sqlite import SQLiteStore
from gateway.service import Gateway
from gateway.spool import Spool
from tests.conftest import EXAMPLE_REGISTRY, REPO
from tests.gateway.test_ingest import publish_all, publisher, telemetry, wait_until
from tests.servers import free_port

DEVICE = "ecully-fablab-grid"
WAIT = 60  # seconds: a bound on waiting, never an assertion on speed
DEEP_TELEMETRY = (b'{"v":1,"device":"%s","boot":1,"readings":' % DEVICE.encode()) + b"[" * 4000 + b"]" * 4000 + b"}"
DEEP_HEALTH = b'{"v":1,"x":' + b"[" * 1000 + b"]" * 1000 + b"}"


def start_gateway(tmp_path: Path, broker_port: int, metrics_port: int) -> subprocess.Popen:
    env = {**os.environ, "BOUCLE_MQTT_PORT": str(broker_port), "BOUCLE_CLIENT_ID": "poison-gateway",
           "BOUCLE_STORE_URL": f"sqlite:///{tmp_path / 'store.db'}", "BOUCLE_SPOOL_PATH": str(tmp_path / "spool.db"),
           "BOUCLE_REGISTRY": str(EXAMPLE_REGISTRY), "BOUCLE_METRICS_PORT": str(metrics_port)}
    return subprocess.Popen([sys.executable, "-m", "boucle", "gateway"], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=(tmp_path / "gateway.log").open("ab"))


def health(port: int) -> dict:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
    except httpx.HTTPError:
        return {}


def stored(store: SQLiteStore) -> int:
    return store.reading_counts([DEVICE], 0, 2**31)[DEVICE]


def stop(gateway: subprocess.Popen, tmp_path: Path) -> str:
    gateway.terminate()
    gateway.wait(30)
    return (tmp_path / "gateway.log").read_text(errors="replace")


def test_deep_json_is_dead_lettered_and_ingestion_goes_on(tmp_path, mosquitto):
    metrics_port = free_port()
    gateway = start_gateway(tmp_path, mosquitto.port, metrics_port)
    try:
        assert wait_until(lambda: health(metrics_port).get("ok"), WAIT), (tmp_path / "gateway.log").read_text()
        client = publisher(mosquitto.port)
        publish_all(client, [(f"boucle/v1/{DEVICE}/telemetry", DEEP_TELEMETRY),
                             (f"boucle/v1/{DEVICE}/health", DEEP_HEALTH),
                             telemetry(DEVICE, 1, range(1, 11))])
        store = SQLiteStore(tmp_path / "store.db")
        assert wait_until(lambda: stored(store) == 10 and len(store.dead_letters()) == 2, WAIT)
        assert sorted((d.error, d.topic.rsplit("/", 1)[1]) for d in store.dead_letters()) == [
            ("too_deep", "health"), ("too_deep", "telemetry")]
        # Later readings keep flowing, and the gateway says it is well.
        publish_all(client, [telemetry(DEVICE, 1, range(11, 21))])
        assert wait_until(lambda: stored(store) == 20, WAIT)
        state = health(metrics_port)
        assert state["ok"] and set(state["stages"].values()) == {"running"}, state
        client.disconnect()
    finally:
        log = stop(gateway, tmp_path)
    assert "RecursionError" not in log and "Traceback" not in log, log


def test_a_poison_message_in_the_spool_at_start_is_dead_lettered(tmp_path, mosquitto):
    """A gateway killed with the poison spooled, not yet stored, meets it again first thing
    at the next start: it must not die on it again."""
    spool = Spool(tmp_path / "spool.db", 1000)
    good_topic, good = telemetry(DEVICE, 2, range(1, 6))
    spool.append([(time.time(), f"boucle/v1/{DEVICE}/telemetry", DEEP_TELEMETRY), (time.time(), good_topic, good)])
    spool.close()
    metrics_port = free_port()
    gateway = start_gateway(tmp_path, mosquitto.port, metrics_port)
    try:
        store_ready = lambda: (tmp_path / "store.db").exists()
        assert wait_until(store_ready, WAIT)
        store = SQLiteStore(tmp_path / "store.db")
        assert wait_until(lambda: stored(store) == 5 and [d.error for d in store.dead_letters()] == ["too_deep"],
                          WAIT), (tmp_path / "gateway.log").read_text()
        assert wait_until(lambda: health(metrics_port).get("ok"), WAIT)
    finally:
        stop(gateway, tmp_path)


def local_gateway(tmp_path, mosquitto, client_id: str, registry=EXAMPLE_REGISTRY, **settings):
    """A gateway on the test broker and a SQLite store in tmp_path: (gateway, store path,
    metrics port), not started."""
    db, metrics_port = tmp_path / "store.db", free_port()
    config = load_settings(GatewaySettings, {}, mqtt_port=mosquitto.port, store_url=f"sqlite:///{db}",
                           registry=str(registry), metrics_port=metrics_port, client_id=client_id,
                           spool_path=str(tmp_path / "spool.db"), **settings)
    return Gateway(config), db, metrics_port


def test_a_failing_stage_is_restarted_and_shown_in_healthz(tmp_path, mosquitto, monkeypatch):
    """Expected failures are handled inside the stages; this injects an unexpected one (a
    bug) into the parser stage's spool read, once."""
    gateway, db, metrics_port = local_gateway(tmp_path, mosquitto, "restart-gateway")
    real_oldest = gateway.spool.oldest
    failures = []

    def oldest_failing_once(limit, after=0):
        if not failures:
            failures.append(time.time())
            raise RuntimeError("injected bug")
        return real_oldest(limit, after)

    monkeypatch.setattr(gateway.spool, "oldest", oldest_failing_once)
    gateway.start()
    try:
        client = publisher(mosquitto.port)
        publish_all(client, [telemetry(DEVICE, 3, range(1, 8))])
        store = SQLiteStore(db)
        assert wait_until(lambda: stored(store) == 7, WAIT)
        assert failures
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        assert 'boucle_gateway_stage_restarts_total{stage="parser"} 1.0' in metrics
        state = health(metrics_port)
        assert state["ok"] and state["stages"]["parser"] == "running", state
        client.disconnect()
    finally:
        gateway.stop()


def test_healthz_fails_while_a_stage_is_down(tmp_path, mosquitto, monkeypatch):
    gateway, _db, metrics_port = local_gateway(tmp_path, mosquitto, "down-gateway")

    def always_failing(*_args, **_kwargs):
        raise RuntimeError("injected bug")

    monkeypatch.setattr(gateway.spool, "dirty", always_failing)  # the aggregator's first call
    gateway.start()
    try:
        assert wait_until(lambda: health(metrics_port).get("stages", {}).get("aggregator") == "restarting", WAIT)
        response = httpx.get(f"http://127.0.0.1:{metrics_port}/healthz", timeout=5)
        assert response.status_code == 503 and response.json()["ok"] is False
    finally:
        gateway.stop()


def test_a_registry_edit_that_is_not_utf8_keeps_the_last_good_one(tmp_path, mosquitto):
    """The aggregator reads the registry on every round: a broken edit must neither end it
    nor change what is served; /healthz names the rejected edit."""
    registry = tmp_path / "registry.toml"
    registry.write_bytes(EXAMPLE_REGISTRY.read_bytes())
    gateway, db, metrics_port = local_gateway(tmp_path, mosquitto, "utf8-gateway", registry,
                                              aggregate_interval_s=0.2)
    gateway.start()
    try:
        registry.write_bytes(EXAMPLE_REGISTRY.read_bytes() + b"\n# caf\xe9\n")
        os.utime(registry, ns=(time.time_ns(), time.time_ns() + 10**9))
        client = publisher(mosquitto.port)
        publish_all(client, [telemetry(DEVICE, 4, range(1, 6))])
        store = SQLiteStore(db)
        assert wait_until(lambda: stored(store) == 5 and store.day_rollups([DEVICE], 0, 2**31), WAIT)
        state = health(metrics_port)
        assert state["stages"]["aggregator"] == "running", state
        assert "not UTF-8" in (state["registry_rejected"] or ""), state
        assert gateway.registry.current().devices  # the last good registry
        client.disconnect()
    finally:
        gateway.stop()

