"""Chaos: a known stream — with repeats, out-of-order and late readings, and invalid
messages — published while the gateway is SIGKILLed, InfluxDB is stopped, and Mosquitto
restarts. Afterwards the store holds exactly the truth, once, and every invalid message
is a dead letter with its reason."""

import json
import random
import signal
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from boucle import rollup
from boucle.storage import open_store
from tests.gateway.known_stream import (
    assert_holds_the_truth,
    gateway_process,
    make_stream,
    wait_until,
)
from tests.servers import free_port


def start_gateway(tmp_path, mosquitto, influxdb, metrics_port):
    return gateway_process(tmp_path / "gateway.log", MQTT_PORT=mosquitto.port, CLIENT_ID="chaos-gateway",
                           STORE_URL=f"influx+http://127.0.0.1:{influxdb.port}/chaos",
                           SPOOL_PATH=tmp_path / "spool.db", METRICS_PORT=metrics_port)


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

    try:
        assert_holds_the_truth(store, truth, invalid_errors, lambda: (tmp_path / "gateway.log").read_text()[-3000:])
        # Rollups, recomputed as readings (late ones too) landed, add up to the same energy
        # (each day's mWh rounded once), in their days and in their months.
        for device, readings in truth.items():
            total_mwh = 1000 * (readings[-1]["energy_wh"] - readings[0]["energy_wh"])

            def rolled_up(device=device):
                days = store.day_rollups([device], 0, 2**31)
                months = store.month_rollups([device], 0, 2**31)
                by_day = sum(int(rollup.day_intervals_of(r).amount.sum()) for r in days)
                by_month = 0
                for m in months:  # a month row holds its closed days: the others are their day rows'
                    spans = rollup.open_spans([m], 0, 2**33).get(device, [])
                    opened = [r for r in days if any(lo <= r.day < hi for lo, hi in spans)]
                    by_month += int(rollup.month_sums([m], 1, opened)["amount"].sum())
                return by_day, by_month, len(days)

            def adds_up(total_mwh=total_mwh, rolled_up=rolled_up):
                by_day, by_month, days = rolled_up()
                return by_day == by_month and abs(by_day - total_mwh) <= days

            assert wait_until(adds_up, timeout=30), (device, rolled_up(), total_mwh)
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
