"""Retained telemetry and health against a real Mosquitto and the gateway: the protocol
says neither is retained. A publish with the retain flag reaches a subscribed gateway as a
live message (the broker clears the flag for established subscriptions, MQTT 3.1.1
§3.3.1.3), which is taken as usual; the broker's retained copy, sent with the flag set on
every new subscription (a new gateway, or a gateway re-subscribing after a restart), is a
dead letter `retained`, kept once however often it comes back. Retained status is the
protocol's own and is taken."""

from __future__ import annotations

import json
import sqlite3

from boucle.settings import GatewaySettings, load_settings
from boucle.storage.sqlite import SQLiteStore
from gateway.service import Gateway
from gateway.spool import Spool
from tests.conftest import EXAMPLE_REGISTRY
from tests.gateway.test_ingest import metrics_showing, publisher, telemetry, wait_until
from tests.servers import free_port

DEVICE = "ecully-fablab-grid"
WAIT = 30  # seconds: a bound on waiting, never an assertion on speed


def gateway(mosquitto, folder, name: str, metrics_port: int = 0) -> Gateway:
    folder.mkdir(exist_ok=True)
    settings = load_settings(GatewaySettings, {}, mqtt_port=mosquitto.port, store_url=f"sqlite:///{folder / 'b.db'}",
                             registry=str(EXAMPLE_REGISTRY), metrics_port=metrics_port, client_id=name,
                             spool_path=str(folder / "spool.db"))
    return Gateway(settings).start()


def stored(store: SQLiteStore) -> int:
    return store.reading_counts([DEVICE], 0, 2**31)[DEVICE]


def letters(store: SQLiteStore) -> list[tuple[str, str]]:
    return sorted((d.error, d.topic.rsplit("/", 1)[1]) for d in store.dead_letters(1000))


def test_retained_copies_are_dead_letters_and_live_ones_are_taken(tmp_path, mosquitto):
    first = gateway(mosquitto, tmp_path / "a", "retained-a")
    client = publisher(mosquitto.port)
    try:
        topic, payload = telemetry(DEVICE, 3, range(1, 11))
        health = json.dumps({"v": 1, "boot": 3, "uptime_s": 60, "heap_free": 81234, "rssi_dbm": -67,
                             "buffer_depth": 0, "dropped": 0, "reset_cause": "power_on", "fw": "0.1.0"}).encode()
        status = json.dumps({"v": 1, "online": True, "boot": 3, "fw": "0.1.0", "reset_cause": "power_on"}).encode()
        for t, body in ((topic, payload), (f"boucle/v1/{DEVICE}/health", health),
                        (f"boucle/v1/{DEVICE}/status", status)):
            client.publish(t, body, qos=1, retain=True).wait_for_publish(10)
        a = SQLiteStore(tmp_path / "a" / "b.db")
        # The live copies: taken as usual.
        assert wait_until(lambda: stored(a) == 10 and set(a.device_states([DEVICE]).get(DEVICE, {})) == {
            "health", "status"}, WAIT)
        assert letters(a) == []

        # A gateway that subscribes now gets only the broker's retained copies.
        port = free_port()
        second = gateway(mosquitto, tmp_path / "b", "retained-b", port)
        try:
            b = SQLiteStore(tmp_path / "b" / "b.db")
            assert wait_until(lambda: len(letters(b)) == 2 and "status" in b.device_states([DEVICE]).get(DEVICE, {}),
                              WAIT)
            assert letters(b) == [("retained", "health"), ("retained", "telemetry")]
            assert stored(b) == 0 and "health" not in b.device_states([DEVICE])[DEVICE]
            letter = next(d for d in b.dead_letters() if d.topic == topic)
            assert letter.payload == payload and "retained" in letter.message
            line = 'boucle_gateway_messages_rejected_total{reason="retained"} 2.0'
            assert line in metrics_showing(port, line)
        finally:
            second.stop()

        # The first gateway re-subscribes at every start and so gets the retained copies
        # too: one dead letter each, however many restarts.
        for restart in range(1, 3):
            first.stop()
            first = gateway(mosquitto, tmp_path / "a", "retained-a")
            # A live message after the retained copies: once it is off the spool, they were
            # handled (in its batch or an earlier one).
            client.publish(*telemetry(DEVICE, 4, [restart]), qos=1).wait_for_publish(10)
            assert wait_until(lambda n=10 + restart, g=first: stored(a) == n and g.spool.depth == 0, WAIT)
            assert letters(a) == [("retained", "health"), ("retained", "telemetry")]
    finally:
        client.disconnect()
        first.stop()


def test_a_spool_written_before_the_retain_flag_is_drained(tmp_path):
    """A spool left by an older gateway (no retain column) opens, and its messages count
    as live ones."""
    path = tmp_path / "spool.db"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE spool (id INTEGER PRIMARY KEY AUTOINCREMENT, received REAL NOT NULL, "
                "topic TEXT NOT NULL, payload BLOB NOT NULL)")
    old.execute("INSERT INTO spool (received, topic, payload) VALUES (1.5, 't', x'7b7d')")
    old.commit()
    old.close()
    spool = Spool(path, 100)
    assert [(m.topic, m.payload, m.retain) for m in spool.oldest(10)] == [("t", b"{}", 0)]
    spool.append([(2.5, "u", b"[]", True)])
    assert [m.retain for m in spool.oldest(10)] == [0, 1]
    spool.close()
