"""Two gateways on a shared subscription store exactly what one gateway stores."""

import json
import random
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from boucle.settings import GatewaySettings, load_settings
from boucle.storage import open_store
from gateway.service import Gateway
from tests.conftest import EXAMPLE_REGISTRY

DEVICES = ["ecully-fablab-grid", "ecully-school-grid", "zim-metal-grid", "cml-cheese-grid", "ecully-bakery-grid"]
T0 = int(time.time()) - 5 * 3600


def stream() -> list[tuple[str, bytes]]:
    rng = random.Random(3)
    messages = []
    for device in DEVICES:
        energy = 1000
        for first in range(1, 241, 4):
            readings = []
            for seq in range(first, first + 4):
                energy += rng.randint(0, 30)
                readings.append({"seq": seq, "ts": T0 + 60 * seq, "energy_wh": energy, "power_w": 100.0 + seq})
            body = {"v": 1, "device": device, "boot": 1, "readings": readings}
            messages.append((f"boucle/v1/{device}/telemetry", json.dumps(body).encode()))
    messages += [messages[i] for i in rng.sample(range(len(messages)), 20)]  # repeats
    messages += [("boucle/v1/ecully-fablab-grid/telemetry", b"not json %d" % i) for i in range(5)]
    rng.shuffle(messages)
    return messages


def run(mosquitto, influxdb, tmp_path, database: str, processes: int):
    gateways = [
        Gateway(load_settings(
            GatewaySettings, {}, mqtt_port=mosquitto.port, client_id=f"{database}-{i}", metrics_port=0,
            share_group=database if processes > 1 else "", registry=str(EXAMPLE_REGISTRY),
            store_url=f"influx+http://127.0.0.1:{influxdb.port}/{database}",
            spool_path=str(tmp_path / f"{database}-{i}.db"))).start()
        for i in range(processes)]
    publisher = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"pub-{database}")
    publisher.connect("127.0.0.1", mosquitto.port)
    publisher.loop_start()
    for info in [publisher.publish(t, p, qos=1) for t, p in stream()]:
        info.wait_for_publish(30)
    publisher.disconnect()
    publisher.loop_stop()
    store = open_store(f"influx+http://127.0.0.1:{influxdb.port}/{database}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (sum(store.reading_counts(DEVICES, 0, 2**31).values()) == 240 * len(DEVICES)
                and len(store.dead_letters()) == 5 and all(not g.spool.dirty() for g in gateways)):
            break
        time.sleep(0.2)
    received = [g.metrics.messages._value.get() for g in gateways]
    for g in gateways:
        g.stop()
    readings = {d: [(r.ts, r.boot, r.seq, r.values["energy_wh"], r.values["power_w"])
                    for r in store.readings(d, 0, 2**31, ["energy_wh", "power_w"])] for d in DEVICES}
    rollups = (store.day_rollups(DEVICES, 0, 2**31), store.month_rollups(DEVICES, 0, 2**31))
    letters = sorted((d.error, d.payload) for d in store.dead_letters())
    return readings, rollups, letters, received


def test_two_processes_store_what_one_stores(mosquitto, influxdb, tmp_path):
    one = run(mosquitto, influxdb, tmp_path, "one", 1)
    two = run(mosquitto, influxdb, tmp_path, "two", 2)
    assert all(len(r) == 240 for r in one[0].values())
    assert one[0] == two[0]
    assert one[1][0] and one[1] == two[1]  # the same day and month rollups
    assert len(one[2]) == 5 and one[2] == two[2]
    assert all(n > 0 for n in two[3]), f"the broker did not share the load: {two[3]}"
