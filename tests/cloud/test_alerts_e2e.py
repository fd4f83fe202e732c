"""Alerts end to end: the API's alert loop on a real SQLite store, delivered to a real HTTP
server on loopback (signature checked, a failure then the retry) and a real Mosquitto,
listed and acknowledged through the API, resolved when the device sends again."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import paho.mqtt.client as mqtt
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from boucle.protocol import Reading
from boucle.registry import ApiKey, RegistryFile, hash_key
from boucle.settings import ApiSettings, load_settings
from boucle.storage.sqlite import SQLiteStore
from cloud.app import create_app
from tests.cloud.conftest import ADMIN as CLOUD_ADMIN
from tests.cloud.conftest import make_app

SECRET = "a-test-webhook-secret-0123456789"
ADMIN, OTHER = "bk_alerts-admin-key", "bk_alerts-other-territory-key"
REGISTRY = """
[waste_streams]
residual = "incineration_energy_recovery"

[[territories]]
id = "bourg"
name = "Bourg"
kind = "commune"
population = 1000
centroid = [45.77, 4.78]
collection = { depot = [45.771, 4.781], round_days = "Mo-Su", round_time = "06:00" }

[[territories]]
id = "ailleurs"
name = "Ailleurs"
kind = "commune"
population = 10
centroid = [45.6, 4.4]

[[sites]]
id = "mairie"
territory = "bourg"
name = "Mairie"
kind = "office"
location = [45.772, 4.782]

[[devices]]
id = "mairie-meter"
site = "mairie"
kind = "energy"
channel = "grid_import"

[[devices]]
id = "mairie-spare"
site = "mairie"
kind = "energy"
channel = "load"
"""


class Receiver(BaseHTTPRequestHandler):
    """Answers 500 to the first POST, 204 to the others; keeps what it got."""

    got: ClassVar[list[tuple[dict, bool, bool]]] = []
    """(body, refused, signature right) of each POST."""
    failed_once = False

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        stamp = self.headers["X-Boucle-Timestamp"]
        expected = "sha256=" + hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        signed = hmac.compare_digest(expected, self.headers["X-Boucle-Signature"])
        first = not Receiver.failed_once
        Receiver.failed_once = True
        Receiver.got.append((json.loads(body), first, signed))
        self.send_response(500 if first else 204)
        self.end_headers()

    def log_message(self, *args):
        pass


def wait_for(check, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def meter_readings(device: str, start: int, end: int, seq0: int = 0) -> list[Reading]:
    return [Reading(device, 1, seq0 + i, ts, {"energy_wh": i, "power_w": 60.0})
            for i, ts in enumerate(range(start, end, 60))]


def test_alerts_delivered_signed_retried_acknowledged_resolved(tmp_path, mosquitto, caplog):
    registry = tmp_path / "registry.toml"
    registry.write_text(REGISTRY)
    store = SQLiteStore(tmp_path / "boucle.db")
    now = int(time.time())
    store.write_readings(meter_readings("mairie-meter", now - 3600, now), received=now)
    store.write_readings(meter_readings("mairie-spare", now - 3600, now - 1800), received=now - 1800)

    http = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    heard: list[tuple[str, dict, int]] = []
    sub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="alerts-test-sub")
    sub.on_message = lambda _c, _u, m: heard.append((m.topic, json.loads(m.payload), m.qos))
    sub.connect("127.0.0.1", mosquitto.port)
    sub.subscribe("boucle/alerts/#", qos=1)
    sub.loop_start()
    settings = load_settings(ApiSettings, {}, store_url=f"sqlite:///{tmp_path / 'boucle.db'}",
                             alerts_webhook_url=f"http://127.0.0.1:{http.server_port}/hook",
                             alerts_webhook_secret=SECRET, alerts_mqtt_host="127.0.0.1",
                             alerts_mqtt_port=mosquitto.port, alerts_interval_s=0.2, alerts_retry_s=0.2)
    keys = [ApiKey(id="admin", sha256=hash_key(ADMIN), admin=True),
            ApiKey(id="other", sha256=hash_key(OTHER), territories=("ailleurs",))]
    try:
        with TestClient(create_app(settings, registry_file=RegistryFile(registry), store=store,
                                   extra_keys=keys)) as client:
            admin = {"X-API-Key": ADMIN}
            # the spare meter went quiet 30 min ago: more than 10 intervals of 60 s
            opened = wait_for(lambda: [b for b, refused, _ in Receiver.got if not refused and b["status"] == "open"],
                              "the opened alert on the webhook")
            assert [(b["rule"], b["subject"]) for b in opened] == [("device_silent", "mairie-spare")]
            first_body, failed, _ = Receiver.got[0]
            assert failed and first_body == opened[0]  # refused once, then the same body again
            assert len(tmp_path.joinpath("alerts.db").read_bytes()) > 0  # the book beside the store
            on_topic = wait_for(lambda: [h for h in heard if h[1]["status"] == "open"], "the alert on MQTT")
            assert on_topic[0][0] == "boucle/alerts/bourg" and on_topic[0][2] == 1

            listed = client.get("/v1/alerts", headers=admin).json()["alerts"]
            assert [(a["rule"], a["status"]) for a in listed] == [("device_silent", "open")]
            alert_id = listed[0]["id"]
            assert client.get(f"/v1/alerts/{alert_id}", headers={"X-API-Key": OTHER}).status_code == 404
            assert client.get("/v1/alerts", headers={"X-API-Key": OTHER}).json()["alerts"] == []
            assert client.post(f"/v1/alerts/{alert_id}/acknowledge", headers={"X-API-Key": OTHER}).status_code == 404

            acked = client.post(f"/v1/alerts/{alert_id}/acknowledge", headers=admin).json()
            assert (acked["status"], acked["acknowledged_by"]) == ("acknowledged", "admin")
            wait_for(lambda: any(b["status"] == "acknowledged" for b, _, _ in Receiver.got), "the acknowledgement")

            # the spare meter sends again: new data, the loop evaluates, the alert resolves
            later = int(time.time())
            store.write_readings(meter_readings("mairie-spare", later - 300, later + 60, seq0=100), received=later)
            resolved = wait_for(lambda: [b for b, _, _ in Receiver.got if b["status"] == "resolved"],
                                "the resolution on the webhook")
            assert resolved[0]["id"] == alert_id
            wait_for(lambda: any(h[1]["status"] == "resolved" for h in heard), "the resolution on MQTT")
            final = client.get(f"/v1/alerts/{alert_id}", headers=admin).json()
            assert final["status"] == "resolved"
            assert final["opened"] <= final["acknowledged"] <= final["resolved"]
            # back, it leaves a hole of about 25 min in its readings: that is a data gap now
            still = client.get("/v1/alerts?status=open", headers=admin).json()["alerts"]
            assert [(a["rule"], a["subject"]) for a in still] == [("data_gap", "mairie-spare")]
            assert still[0]["detail"]["missing_readings"] >= 20
        assert all(signed for _, _, signed in Receiver.got) and len(Receiver.got) >= 4
        assert SECRET not in caplog.text and "answered 500" in caplog.text  # the failure logged, not the secret
    finally:
        sub.loop_stop()
        sub.disconnect()
        http.shutdown()
        store.close()



def test_a_process_without_a_book_evaluates_nothing_and_says_who_serves_alerts(simulated_db):
    """BOUCLE_ALERTS_DB=off (the scalable API replicas on Kubernetes): no book, no loop, 503."""
    app = make_app(simulated_db, alerts_db="off", alerts_interval_s=0.05)
    key = {"X-API-Key": CLOUD_ADMIN}
    with TestClient(app) as client:
        assert app.state.alerts is None
        for method, path in [("GET", "/v1/alerts"), ("GET", "/v1/alerts/1"), ("POST", "/v1/alerts/evaluate"),
                             ("GET", "/v1/exchanges")]:
            got = client.request(method, path, headers=key)
            assert got.status_code == 503, (path, got.text)
            assert "BOUCLE_ALERTS_DB=off" in got.json()["detail"]
        assert client.get("/v1/alerts").status_code == 401  # the key is still checked first
        assert client.get("/v1/territories/ecully", headers=key).status_code == 200
    assert not Path("off").exists()  # "off" is no file name
