"""Chaos: a known stream — with repeats, out-of-order and late readings, and invalid
messages — published while the gateway is SIGKILLed, InfluxDB is stopped, and Mosquitto
restarts. Afterwards the store holds exactly the truth, once, and every invalid message
is a dead letter with its reason."""

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from boucle import rollup
from boucle.accounting import counter_deltas
from boucle.protocol import vectors
from boucle.storage import open_store
from tests.conftest import EXAMPLE_REGISTRY, REPO
from tests.servers import free_port

DEVICES = ["ecully-fablab-grid", "ecully-bakery-grid", "zim-metal-grid"]
T0 = int(time.time()) - 6 * 3600


def make_stream(rng: random.Random):
    """(messages, truth): payloads to publish in order, and the true per-device readings."""
    messages, truth = [], {}
    for device in DEVICES:
        energy, readings = 5000, []
        for boot in (1, 2):  # a reboot halfway: the counter continues, seq restarts
            for seq in range(1, 151):
                energy += rng.randint(0, 40)
                readings.append({"boot": boot, "seq": seq, "ts": T0 + 60 * len(readings), "energy_wh": energy})
        truth[device] = readings
        for i in range(0, len(readings), 5):
            chunk = readings[i:i + 5]
            assert len({r["boot"] for r in chunk}) == 1
            body = {"v": 1, "device": device, "boot": chunk[0]["boot"],
                    "readings": [{k: r[k] for k in ("seq", "ts", "energy_wh")} for r in chunk]}
            messages.append((f"boucle/v1/{device}/telemetry", json.dumps(body).encode()))
    late = [messages.pop(rng.randrange(len(messages))) for _ in range(15)]  # held back, sent at the end
    rng.shuffle(messages)                                                    # out of order
    repeats = [messages[rng.randrange(len(messages))] for _ in range(30)]     # published twice
    invalid = [v for v in vectors()["vectors"] if not v["valid"] and v["error"] not in ("future_timestamp", "retained")]
    bad = [(f"boucle/v1/{v.get('topic_device', 'ecully-fablab-grid')}/telemetry",
            v["raw"].encode() if "raw" in v else json.dumps(v["payload"]).encode()) for v in invalid]
    stream = messages + repeats + bad
    rng.shuffle(stream)
    return stream + late, truth, sorted(v["error"] for v in invalid)


def start_gateway(tmp_path, mosquitto, influxdb, metrics_port):
    env = {**os.environ, "BOUCLE_MQTT_PORT": str(mosquitto.port), "BOUCLE_CLIENT_ID": "chaos-gateway",
           "BOUCLE_STORE_URL": f"influx+http://127.0.0.1:{influxdb.port}/chaos",
           "BOUCLE_SPOOL_PATH": str(tmp_path / "spool.db"), "BOUCLE_REGISTRY": str(EXAMPLE_REGISTRY),
           "BOUCLE_METRICS_PORT": str(metrics_port), "BOUCLE_BATCH_SIZE": "20",
           "BOUCLE_LOG_FORMAT": "json"}
    return subprocess.Popen([sys.executable, "-m", "boucle", "gateway"], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=(tmp_path / "gateway.log").open("ab"))


def wait_until(predicate, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # the store may be down at this moment
            if predicate():
                return True
        time.sleep(0.25)
    return False


def test_nothing_lost_nothing_twice(tmp_path, mosquitto, influxdb):
    stream, truth, invalid_errors = make_stream(random.Random(7))
    metrics_port = free_port()
    gateway = start_gateway(tmp_path, mosquitto, influxdb, metrics_port)
    store = open_store(f"influx+http://127.0.0.1:{influxdb.port}/chaos")
    assert wait_until(lambda: b"subscribed" in (tmp_path / "gateway.log").read_bytes() or
                      _healthz(metrics_port), timeout=30)

    publisher = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="chaos-publisher",
                            clean_session=False)
    publisher.max_queued_messages_set(0)
    acked: set[int] = set()
    publisher.on_publish = lambda _c, _u, mid, _rc, _p: acked.add(mid)
    publisher.connect("127.0.0.1", mosquitto.port)
    publisher.loop_start()
    done = threading.Event()

    def publish() -> None:
        mids = []
        for topic, payload in stream:
            mids.append(publisher.publish(topic, payload, qos=1).mid)
            time.sleep(0.01)
        # A message published while the broker restarts is queued by paho (rc "not connected")
        # and sent on reconnect: wait for every PUBACK, not for each first attempt.
        while not acked.issuperset(mids):
            time.sleep(0.1)
        done.set()

    threading.Thread(target=publish, daemon=True).start()
    n = len(stream)

    def kill_and_restart() -> None:
        nonlocal gateway
        gateway.send_signal(signal.SIGKILL)
        gateway.wait()
        gateway = start_gateway(tmp_path, mosquitto, influxdb, metrics_port)

    def stop_store() -> None:
        influxdb.stop()
        # The outage lasts until the gateway met it (a write refused): when the restart above
        # took longer than the outage would, the gateway never saw one (seen here, 1 run in 8).
        wait_until(lambda: b"store write failed" in (tmp_path / "gateway.log").read_bytes(), timeout=60)

    events = [
        (n // 5, kill_and_restart),
        (2 * n // 5, stop_store),
        (3 * n // 5, influxdb.start),
        (4 * n // 5, mosquitto.restart),
    ]
    for at, action in events:
        while publisher_sent(publisher) < at and not done.is_set():
            time.sleep(0.02)
        action()
    assert done.wait(120), "the publisher could not deliver its stream"

    expected = sum(len(r) for r in truth.values())
    try:
        assert wait_until(lambda: sum(store.reading_counts(DEVICES, 0, 2**31).values()) == expected
                          and len(store.dead_letters(1000)) == len(invalid_errors), timeout=60), (
            store.reading_counts(DEVICES, 0, 2**31), expected, sorted(d.error for d in store.dead_letters(1000)),
            invalid_errors, (tmp_path / "gateway.log").read_text()[-3000:])
        # Exactly the truth: every reading, once, with its value; the same energy totals.
        for device, readings in truth.items():
            stored = store.readings(device, 0, 2**31, ["energy_wh"])
            assert [(r.boot, r.seq, r.ts, r.values["energy_wh"]) for r in stored] == \
                   [(r["boot"], r["seq"], r["ts"], r["energy_wh"]) for r in readings]
            values = [r.values["energy_wh"] for r in stored]
            assert counter_deltas(values, [r.ts for r in stored], None).total_wh == values[-1] - values[0]
        assert sorted(d.error for d in store.dead_letters(1000)) == invalid_errors
        # Rollups, recomputed as readings (late ones too) landed, add up to the same energy
        # (each day's mWh rounded once), in their days and in their months.
        for device, readings in truth.items():
            total_mwh = 1000 * (readings[-1]["energy_wh"] - readings[0]["energy_wh"])

            def rolled_up(device=device):
                days = store.day_rollups([device], 0, 2**31)
                months = store.month_rollups([device], 0, 2**31)
                by_day = sum(int(rollup.day_intervals_of(r).amount.sum()) for r in days)
                by_month = sum(int(rollup.month_sums([m], 1)["amount"].sum()) for m in months)
                return by_day, by_month, len(days)

            def adds_up(total_mwh=total_mwh, rolled_up=rolled_up):
                by_day, by_month, days = rolled_up()
                return by_day == by_month and abs(by_day - total_mwh) <= days

            assert wait_until(adds_up, timeout=30), (device, rolled_up(), total_mwh)
        assert all(d.message for d in store.dead_letters(1000))
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(30)
        publisher.loop_stop()
    assert gateway.returncode == 0
    # Structured logs: every line a JSON object, the outages reported, no traceback spill.
    lines = [json.loads(line) for line in (tmp_path / "gateway.log").read_text().splitlines() if line]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    assert any("store write failed" in line["message"] for line in lines)


def publisher_sent(client) -> int:
    # paho numbers messages 1, 2, 3...: the last mid handed out is how many were published.
    return client._last_mid


def _healthz(port) -> bool:
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
        return r.status == 200
