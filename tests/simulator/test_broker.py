"""The simulator against a real Mosquitto and the real gateway: an outage delays and
then delivers everything, garbage goes to dead letters, duplicates are dropped, and a
real subscriber sees the same bytes for the same seed."""

import json
import re
import threading
import time

import httpx
import paho.mqtt.client as mqtt
import uvicorn
from paho.mqtt.enums import CallbackAPIVersion

from boucle.registry import ApiKey, RegistryFile, hash_key, load_registry
from boucle.settings import ApiSettings, GatewaySettings, SimulatorSettings, load_settings
from boucle.storage.sqlite import SQLiteStore
from cloud.app import create_app
from gateway.service import Gateway
from simulator.ledger import read_ledger, totals
from simulator.run import run_simulation
from tests.conftest import EXAMPLE_REGISTRY
from tests.servers import free_port
from tests.simulator.capture import START

KEY = "bk_test-admin-key"

HOURS = 4
DOWN = ("ecully-fablab-grid", "ecully-fablab-pv", "ecully-school-grid")


def wait_until(check, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def test_an_outage_delays_then_the_pipeline_gets_everything(tmp_path, mosquitto):
    db = tmp_path / "boucle.db"
    gateway = Gateway(load_settings(GatewaySettings, {}, mqtt_port=mosquitto.port, store_url=f"sqlite:///{db}",
                                    metrics_port=0, spool_path=str(tmp_path / "spool"))).start()
    published: list[tuple[str, bytes]] = []
    faults = [
        {"kind": "outage", "start": "+1h", "duration": "2h", "devices": list(DOWN)},
        {"kind": "garbage", "start": "+30m", "count": 5, "devices": ["ecully-bakery-grid"]},
        {"kind": "duplicate", "start": "+2h", "count": 2, "devices": ["zim-*"]},
        {"kind": "reboot", "start": "+150m", "devices": ["zim-metal-grid"]},
        {"kind": "counter_reset", "start": "+1h", "devices": ["cml-cheese-grid"]},
    ]
    try:
        sim = load_settings(SimulatorSettings, {}, mqtt_port=mosquitto.port, ledger=str(tmp_path / "ledger.jsonl"))
        report = run_simulation(sim, start=START, end=START + HOURS * 3600, speed=0, batch=10,
                                state_path=tmp_path / "state.json", faults=faults,
                                publish_hook=lambda t, p: published.append((t, p)))
        devices = [d.id for d in load_registry(EXAMPLE_REGISTRY).devices]
        assert report.readings == sum(HOURS * 3600 // d.interval_s for d in load_registry(EXAMPLE_REGISTRY).devices)
        assert report.garbage == 5 and report.duplicates == 2 * sum(d.startswith("zim-") for d in devices)
        store = SQLiteStore(db)
        assert wait_until(lambda: sum(store.reading_counts(devices, 0, 2**31).values()) >= report.readings)
        assert wait_until(lambda: len(store.dead_letters(1000)) >= report.garbage)
        time.sleep(0.5)  # anything more would be a bug: give it the chance to show
        counts = store.reading_counts(devices, 0, 2**31)
        # every interval, duplicates dropped
        assert counts == {d.id: HOURS * 3600 // d.interval_s for d in load_registry(EXAMPLE_REGISTRY).devices}
        assert len(store.dead_letters(1000)) == report.garbage
        assert all(d.topic == "boucle/v1/ecully-bakery-grid/telemetry" for d in store.dead_letters(1000))
    finally:
        gateway.stop()

    # Delayed: when the outage devices sent their first reading of the outage, the rest
    # of the fleet had already sent readings from its last 10 minutes.
    newest = 0
    outage_start, outage_end = START + 3600, START + 3 * 3600
    for topic, payload in published:
        if not topic.endswith("/telemetry"):
            continue
        try:
            body = json.loads(payload)
            stamps = [r["ts"] for r in body["readings"]]
        except (ValueError, KeyError):
            continue  # one of the garbage payloads
        if body["device"] in DOWN:
            if any(outage_start <= ts < outage_end for ts in stamps):
                assert newest >= outage_end - 600
        elif stamps:
            newest = max(newest, *stamps)
    rows = read_ledger(tmp_path / "ledger.jsonl")
    assert sum(r.get("garbage", 0) for r in rows) == 5
    assert sum(r.get("outages", 0) for r in rows) == len(DOWN)


def capture_through_broker(tmp_path, port, seed, name):
    """Run one simulated hour with `seed`; what a real subscriber received, per topic."""
    got: dict[str, list[bytes]] = {}
    lock = threading.Lock()
    subscribed = threading.Event()

    def on_message(client, userdata, msg):
        with lock:
            got.setdefault(msg.topic, []).append(msg.payload)

    sub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"capture-{name}")
    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect("127.0.0.1", port)
    sub.subscribe("boucle/v1/+/telemetry", qos=1)
    sub.loop_start()
    try:
        assert subscribed.wait(10)
        sent: list[bytes] = []
        sim = load_settings(SimulatorSettings, {}, mqtt_port=port, seed=seed, ledger=str(tmp_path / f"{name}.jsonl"))
        run_simulation(sim, start=START, end=START + 3600, speed=0, batch=10, state_path=tmp_path / f"{name}.json",
                       faults=[{"kind": "duplicate", "start": "+20m", "share": 0.3, "count": 1}],
                       publish_hook=lambda t, p: sent.append(p) if t.endswith("/telemetry") else None)
        assert wait_until(lambda: sum(len(v) for v in got.values()) >= len(sent), 30)
    finally:
        sub.loop_stop()
        sub.disconnect()
    return got


def test_same_seed_same_bytes_through_the_broker(tmp_path, mosquitto):
    first = capture_through_broker(tmp_path, mosquitto.port, 7, "first")
    second = capture_through_broker(tmp_path, mosquitto.port, 7, "second")
    other = capture_through_broker(tmp_path, mosquitto.port, 8, "other")
    assert len(first) == len(load_registry(EXAMPLE_REGISTRY).devices)
    assert first == second
    assert other != first


def test_the_api_finds_the_ledger_energy_under_faults(tmp_path, mosquitto):
    """Outages, counter resets, reboots, unsynced clocks, duplicates and a dead meter: the
    API's energy.consumed is still exactly the ledger's Wh, territory by territory."""
    db = tmp_path / "boucle.db"
    hours = 6
    gateway = Gateway(load_settings(GatewaySettings, {}, mqtt_port=mosquitto.port, store_url=f"sqlite:///{db}",
                                    metrics_port=0, spool_path=str(tmp_path / "spool"))).start()
    faults = [
        {"kind": "outage", "start": "+1h", "duration": "2h", "devices": ["ecully-*"]},
        {"kind": "counter_reset", "start": "+2h", "devices": ["ecully-fablab-grid", "zim-metal-grid", "cml-cheese-grid"]},
        {"kind": "reboot", "start": "+150m", "share": 0.5},
        {"kind": "unsynced_clock", "start": "+4h", "duration": "30m", "devices": ["zim-*"]},
        {"kind": "duplicate", "start": "+1h", "count": 3},
        {"kind": "dead_sensor", "start": "+5h", "duration": "30m", "devices": ["cml-bakery-grid"]},
    ]
    try:
        sim = load_settings(SimulatorSettings, {}, mqtt_port=mosquitto.port, ledger=str(tmp_path / "ledger.jsonl"))
        report = run_simulation(sim, start=START, end=START + hours * 3600, speed=0, batch=10,
                                state_path=tmp_path / "state.json", faults=faults)
        devices = [d.id for d in load_registry(EXAMPLE_REGISTRY).devices]
        store = SQLiteStore(db)
        assert wait_until(lambda: sum(store.reading_counts(devices, 0, 2**31).values()) >= report.readings)
    finally:
        gateway.stop()

    rows = read_ledger(tmp_path / "ledger.jsonl")
    assert sum(r.get("counter_resets", 0) for r in rows) == 3
    true_wh = totals(rows, "territory", "wh", START, START + hours * 3600, channel="grid_import")
    port = free_port()
    app = create_app(load_settings(ApiSettings, {}, port=port, store_url=f"sqlite:///{db}"),
                     registry_file=RegistryFile(EXAMPLE_REGISTRY),
                     extra_keys=[ApiKey(id="test-admin", sha256=hash_key(KEY), admin=True)])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    server.install_signal_handlers = lambda: None
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: server.started, 30)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": KEY}, timeout=30) as client:
            for territory, wh in true_wh.items():
                r = client.get(f"/v1/territories/{territory}/indicators",
                               params={"from": START, "to": START + hours * 3600, "ids": "energy.consumed"})
                assert r.status_code == 200, r.text
                (energy,) = r.json()["indicators"]
                assert wh > 10_000 and round(energy["value"] * 1000) == wh, territory
                # the dead meter's silence shows in coverage; delayed readings do not
                assert (energy["coverage"] < 0.99) == (territory == "cc-monts-lyonnais"), energy
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_fleet_never_runs_ahead_of_the_real_clock(tmp_path, mosquitto):
    late: list[tuple[int, float]] = []

    def check(topic, payload):
        if topic.endswith("/telemetry"):
            now = time.time()
            late.extend((r["ts"], now) for r in json.loads(payload)["readings"] if r["ts"] > now)

    fast = tmp_path / "every-second.toml"  # every device samples each second
    fast.write_text(re.sub(r"^interval_s = \d+$", "interval_s = 1", EXAMPLE_REGISTRY.read_text(), flags=re.MULTILINE))
    now = int(time.time())
    sim = load_settings(SimulatorSettings, {}, mqtt_port=mosquitto.port, registry=str(fast),
                        ledger=str(tmp_path / "ledger.jsonl"))
    # as fast as possible, a step a second, until 2 s from now
    report = run_simulation(sim, start=now - 2, end=now + 2, speed=0, batch=1, interval_s=1,
                            state_path=tmp_path / "state.json", publish_hook=check)
    assert report.readings == 4 * len(load_registry(fast).devices)
    assert late == []


def test_a_broker_restart_mid_run_loses_nothing(tmp_path, mosquitto):
    db = tmp_path / "boucle.db"
    gateway = Gateway(load_settings(GatewaySettings, {}, mqtt_port=mosquitto.port, store_url=f"sqlite:///{db}",
                                    metrics_port=0, spool_path=str(tmp_path / "spool"))).start()
    outcome: dict = {}
    sim = load_settings(SimulatorSettings, {}, mqtt_port=mosquitto.port, ledger=str(tmp_path / "ledger.jsonl"))

    def simulate():
        try:
            outcome["report"] = run_simulation(sim, start=START, end=START + 6 * 3600, speed=6 * 3600 / 4, batch=1,
                                               state_path=tmp_path / "state.json")
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            outcome["error"] = exc

    runner = threading.Thread(target=simulate)
    runner.start()
    try:
        time.sleep(1.5)
        mosquitto.restart()
        runner.join(120)
        assert "error" not in outcome, outcome.get("error")
        report = outcome["report"]
        devices = [d.id for d in load_registry(EXAMPLE_REGISTRY).devices]
        store = SQLiteStore(db)
        assert wait_until(lambda: sum(store.reading_counts(devices, 0, 2**31).values()) >= report.readings)
        assert store.reading_counts(devices, 0, 2**31) == {
            d.id: 6 * 3600 // d.interval_s for d in load_registry(EXAMPLE_REGISTRY).devices}
    finally:
        gateway.stop()
