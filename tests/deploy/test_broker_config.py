"""deploy/mosquitto/ under a real Mosquitto: the production config as shipped, with only its
listener ports and container paths rewritten for the test; the service accounts made by
`boucle secrets`; TLS with certificates made by deploy/certs/make-certs.sh; per-device auth
and ACL; client ids bound to user names; the compose healthcheck."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from boucle.storage.sqlite import SQLiteStore
from tests.conftest import EXAMPLE_REGISTRY, require_binary
from tests.deploy.stack import REPO, host_path_of, load_compose, read_env_file
from tests.gateway.test_ingest import wait_until
from tests.servers import free_port, wait_port
from workshop.credentials import hash_password, password_users, with_acl, with_password

MAKE_CERTS = REPO / "deploy" / "certs" / "make-certs.sh"
DEVICE = "ecully-fablab-grid"  # a device of the example registry
OTHER_DEVICE = "ecully-fablab-pv"
WAIT = 15  # seconds: a bound on waiting for the broker, never an assertion


@dataclass
class Broker:
    plain_port: int
    tls_port: int
    certs: Path
    config: Path
    proc: subprocess.Popen
    env: dict[str, str]
    """The .env that `boucle secrets` wrote for this broker's accounts."""


def make_certs(out: Path, *names: str) -> Path:
    require_binary("openssl", "openssl")
    done = subprocess.run(["sh", str(MAKE_CERTS), "-o", str(out), *names],
                          check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out


def rewrite_config(text: str, ports: dict[int, int], paths: dict[str, Path]) -> str:
    """The shipped config with listener ports and container paths replaced, nothing else."""
    out = []
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "listener":
            line = f"listener {ports[int(value)]} 127.0.0.1"
        elif not line.startswith("#"):
            for container, host in paths.items():
                line = line.replace(container, str(host))
        out.append(line)
    if os.geteuid() == 0:  # test-only: mosquitto refuses root without a user to become
        out.append("user root")
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[Broker]:
    require_binary("mosquitto", "mosquitto")
    tmp = tmp_path_factory.mktemp("broker")
    service = load_compose()["services"]["mosquitto"]
    # The folders docker-compose mounts, copied so the test may add a device to passwd.
    config_dir = tmp / "config"
    shutil.copytree(host_path_of(service, "/mosquitto/config"), config_dir)
    certs = make_certs(tmp / "certs", "localhost")
    data = tmp / "data"
    data.mkdir()
    passwd, acl = config_dir / "passwd", config_dir / "acl"
    assert password_users(passwd.read_text()) == {}, "the shipped password file must hold no account"
    # The install step: generated secrets and the service accounts (demo simulator included).
    made = subprocess.run([sys.executable, "-m", "boucle", "secrets", "--env", str(tmp / ".env"),
                           "--template", str(REPO / ".env.example"), "--password-file", str(passwd), "--demo"],
                          check=False, capture_output=True, text=True, cwd=REPO)
    assert made.returncode == 0, made.stderr
    env = read_env_file(tmp / ".env")
    assert all(value not in made.stdout for value in env.values() if len(value) > 8), "a secret was printed"
    # What the workshop tool does when it provisions a device, with its own code; and the
    # bench operator's account, which the operator adds.
    text = with_password(passwd.read_text(), DEVICE, hash_password("device-secret"))
    text = with_password(text, OTHER_DEVICE, hash_password("other-secret"))
    passwd.write_text(with_password(text, "boucle-workshop", hash_password("bench-secret")))
    acl.write_text(with_acl(with_acl(acl.read_text(), DEVICE, "boucle/v1"), OTHER_DEVICE, "boucle/v1"))
    plain, tls = free_port(), free_port()
    config = tmp / "mosquitto.conf"
    config.write_text(rewrite_config((config_dir / "mosquitto.conf").read_text(), {1883: plain, 8883: tls},
                                     {"/mosquitto/config": config_dir, "/mosquitto/certs": certs,
                                      "/mosquitto/data": data}))
    log = (tmp / "mosquitto.log").open("wb")
    proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(config)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(plain, proc=proc)
        wait_port(tls, proc=proc)
        yield Broker(plain, tls, certs, config, proc, env)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_rewrite_touches_only_ports_and_paths(broker):
    shipped = (REPO / "deploy" / "mosquitto" / "mosquitto.conf").read_text().splitlines()
    used = broker.config.read_text().splitlines()
    changed = [(a, b) for a, b in zip(shipped, used) if a != b]
    assert changed and all(a.split()[0] == b.split()[0] for a, b in changed)
    assert {a.split()[0] for a, _ in changed} <= {"listener", "persistence_location", "password_file",
                                                  "acl_file", "cafile", "certfile", "keyfile"}
    assert broker.proc.poll() is None


class Client:
    """A paho client that waits for CONNACK and collects messages, for assertions."""

    def __init__(self, username: str, password: str, client_id: str, protocol=mqtt.MQTTv5, **client_options):
        self.mqtt = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol, **client_options)
        self.mqtt.username_pw_set(username, password)
        self.connected = threading.Event()
        self.reason: ReasonCode | None = None
        self.messages: list[tuple[str, bytes]] = []
        self.arrived = threading.Condition()
        self.subacks: list[list[ReasonCode]] = []
        self.subscribed = threading.Event()
        self.dropped = threading.Event()
        self.session_present: bool | None = None
        self.mqtt.on_connect = self._on_connect
        self.mqtt.on_disconnect = lambda *_args: self.dropped.set()
        self.mqtt.on_message = self._on_message
        self.mqtt.on_subscribe = self._on_subscribe

    def _on_connect(self, _c, _u, flags, reason, _props) -> None:
        self.reason = reason
        self.session_present = flags.session_present
        self.connected.set()

    def _on_message(self, _c, _u, msg) -> None:
        with self.arrived:
            self.messages.append((msg.topic, msg.payload))
            self.arrived.notify_all()

    def _on_subscribe(self, _c, _u, _mid, reasons, _props) -> None:
        self.subacks.append(reasons)
        self.subscribed.set()

    def connect(self, port: int, ca: Path | None = None, **options) -> ReasonCode:
        if ca is not None:
            self.mqtt.tls_set(ca_certs=str(ca))
        self.mqtt.connect("127.0.0.1", port, **options)
        self.mqtt.loop_start()
        assert self.connected.wait(WAIT), "no CONNACK"
        return self.reason

    def subscribe(self, topic: str) -> list[ReasonCode]:
        self.subscribed.clear()
        self.mqtt.subscribe(topic, qos=1)
        assert self.subscribed.wait(WAIT), "no SUBACK"
        return self.subacks[-1]

    def publish(self, topic: str, payload: bytes) -> None:
        self.mqtt.publish(topic, payload, qos=1).wait_for_publish(WAIT)

    def wait_for(self, payload: bytes) -> list[tuple[str, bytes]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: any(p == payload for _, p in self.messages), WAIT), \
                f"{payload!r} never arrived"
            return list(self.messages)

    def close(self) -> None:
        self.mqtt.disconnect()
        self.mqtt.loop_stop()


def connect(clients: list[Client], broker: Broker, username: str, password: str,
            tls: bool = True, client_id: str | None = None, **options) -> Client:
    c = Client(username, password, client_id or f"test-{username}-{len(clients)}")
    clients.append(c)
    reason = c.connect(broker.tls_port if tls else broker.plain_port, broker.certs / "ca-bundle.pem" if tls else None,
                       **options)
    assert not reason.is_failure, f"{username}: {reason}"
    return c


def test_services_connect_with_the_generated_ca_and_passwords(broker, clients):
    env = broker.env
    connect(clients, broker, "boucle-gateway", env["MQTT_GATEWAY_PASSWORD"], tls=True)
    connect(clients, broker, "boucle-gateway-2", env["MQTT_GATEWAY_2_PASSWORD"], tls=False)
    connect(clients, broker, "boucle-simulator", env["MQTT_SIMULATOR_PASSWORD"], tls=False)
    assert not any(c.dropped.is_set() for c in clients)


def test_no_shipped_or_example_password_is_accepted(broker, clients):
    for username, password in (("boucle-gateway", "change-me-gateway"), ("boucle-simulator", "change-me-simulator"),
                               ("boucle-gateway", "")):
        c = Client(username, password, f"test-known-{len(clients)}")
        clients.append(c)
        assert c.connect(broker.plain_port).is_failure, f"{username} accepted a known password"


@pytest.mark.parametrize("tls", [True, False], ids=["tls-listener", "plain-listener"])
def test_a_device_cannot_take_over_the_gateways_session(broker, clients, tls):
    """The attack of issue 20: a device connects with the gateway's client id and
    clean_start. With client ids bound to user names it gets its own id instead: the
    gateway stays connected, keeps its session, and receives every reading."""
    gateway = connect(clients, broker, "boucle-gateway", broker.env["MQTT_GATEWAY_PASSWORD"], tls=False,
                      client_id="boucle-gateway", clean_start=False, properties=_session_expiry(3600))
    gateway.subscribe(f"boucle/v1/{DEVICE}/telemetry")
    attacker = connect(clients, broker, DEVICE, "device-secret", tls=tls, client_id="boucle-gateway",
                       clean_start=True)
    for i in range(5):
        attacker.publish(f"boucle/v1/{DEVICE}/telemetry", b"reading-%d" % i)
    seen = gateway.wait_for(b"reading-4")
    assert {b"reading-%d" % i for i in range(5)} <= {p for _, p in seen}
    assert not gateway.dropped.is_set(), "the gateway was disconnected"


def test_devices_cannot_kick_each_other_off(broker, clients):
    gateway = connect(clients, broker, "boucle-gateway", broker.env["MQTT_GATEWAY_PASSWORD"], tls=False)
    gateway.subscribe("boucle/v1/+/telemetry")
    victim = connect(clients, broker, DEVICE, "device-secret", client_id=DEVICE)
    connect(clients, broker, OTHER_DEVICE, "other-secret", client_id=DEVICE, clean_start=True)
    victim.publish(f"boucle/v1/{DEVICE}/telemetry", b"still-here")
    gateway.wait_for(b"still-here")
    assert not victim.dropped.is_set(), "another device's connection dropped this one"


def test_the_gateway_process_keeps_every_reading_through_a_takeover_attempt(broker, clients, tmp_path):
    """The same attack against the real `boucle gateway` process, configured as the compose
    file configures it (its user, password and client id): all readings are stored and
    the broker never dropped its session."""
    metrics_port = free_port()
    store_path = tmp_path / "store.db"
    env = {**os.environ, "BOUCLE_MQTT_PORT": str(broker.plain_port), "BOUCLE_MQTT_USERNAME": "boucle-gateway",
           "BOUCLE_MQTT_PASSWORD": broker.env["MQTT_GATEWAY_PASSWORD"], "BOUCLE_CLIENT_ID": "boucle-gateway",
           "BOUCLE_STORE_URL": f"sqlite:///{store_path}", "BOUCLE_SPOOL_PATH": str(tmp_path / "spool.db"),
           "BOUCLE_REGISTRY": str(EXAMPLE_REGISTRY), "BOUCLE_METRICS_PORT": str(metrics_port)}
    log = tmp_path / "gateway.log"
    gateway = subprocess.Popen([sys.executable, "-m", "boucle", "gateway"], env=env, cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    try:
        assert wait_until(lambda: _health(metrics_port).get("ok"), WAIT * 4), log.read_text()
        attacker = connect(clients, broker, DEVICE, "device-secret", client_id="boucle-gateway", clean_start=True)
        now = int(time.time())
        for seq in range(1, 6):
            body = {"v": 1, "device": DEVICE, "boot": 1, "readings": [{"seq": seq, "ts": now - 60 * seq,
                                                                       "energy_wh": 1000 + seq}]}
            attacker.publish(f"boucle/v1/{DEVICE}/telemetry", json.dumps(body).encode())
        assert wait_until(lambda: store_path.exists()
                          and SQLiteStore(store_path).reading_counts([DEVICE], 0, 2**31)[DEVICE] == 5, WAIT * 4)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        assert "boucle_gateway_session_lost_total 0.0" in metrics
        assert "boucle_gateway_connected 1.0" in metrics
    finally:
        gateway.terminate()
        gateway.wait(30)


def _health(port: int) -> dict:
    try:
        return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read())
    except (OSError, ValueError):
        return {}


def test_tls_is_refused_with_another_ca(broker, tmp_path):
    other = make_certs(tmp_path / "other")
    c = Client("boucle-gateway", broker.env["MQTT_GATEWAY_PASSWORD"], "test-wrong-ca")
    c.mqtt.tls_set(ca_certs=str(other / "ca.crt"))
    with pytest.raises(ssl.SSLCertVerificationError):
        c.mqtt.connect("127.0.0.1", broker.tls_port)


def test_tls_certificate_is_for_the_broker_names(broker):
    context = ssl.create_default_context(cafile=str(broker.certs / "ca-bundle.pem"))
    with (socket.create_connection(("127.0.0.1", broker.tls_port), timeout=WAIT) as raw,
          context.wrap_socket(raw, server_hostname="localhost") as tls):
        names = {v for _, v in tls.getpeercert()["subjectAltName"]}
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    assert {"mosquitto", "localhost", "127.0.0.1"} <= names


def test_wrong_password_and_anonymous_are_refused(broker, clients):
    for username, password in (("boucle-gateway", "not-the-password"), ("", "")):
        c = Client(username, password, f"test-refused-{len(clients)}")
        if not username:
            c.mqtt.username_pw_set(None, None)
        clients.append(c)
        reason = c.connect(broker.plain_port)
        assert reason.is_failure, f"{username!r} was let in"


def test_acl_device_writes_only_under_its_own_id_and_gateway_reads_all(broker, clients):
    env = broker.env
    gateway = connect(clients, broker, "boucle-gateway", env["MQTT_GATEWAY_PASSWORD"])
    # The shared subscription the compose gateways use; and status.
    group = load_compose()["services"]["gateway"]["environment"]["BOUCLE_SHARE_GROUP"]
    grants = gateway.subscribe(f"$share/{group}/boucle/v1/+/telemetry")
    assert not grants[0].is_failure
    assert not gateway.subscribe("boucle/v1/+/status")[0].is_failure
    device = connect(clients, broker, DEVICE, "device-secret")
    assert not device.subscribe(f"boucle/v1/{DEVICE}/cmd")[0].is_failure
    # Forbidden publishes first; a permitted one from the same client last. The broker keeps
    # each publisher's order, so when the marker arrives the forbidden ones would have too.
    device.publish(f"boucle/v1/{OTHER_DEVICE}/telemetry", b"spoofed")
    gateway.publish(f"boucle/v1/{DEVICE}/telemetry", b"from-gateway")  # read-only user
    device.publish(f"boucle/v1/{DEVICE}/status", b'{"online": true}')
    device.publish(f"boucle/v1/{DEVICE}/telemetry", b"marker")
    seen = gateway.wait_for(b"marker")
    assert (f"boucle/v1/{DEVICE}/status", b'{"online": true}') in seen
    assert all(p not in (b"spoofed", b"from-gateway") for _, p in seen)
    # The demo simulator publishes for any device.
    simulator = connect(clients, broker, "boucle-simulator", env["MQTT_SIMULATOR_PASSWORD"], tls=False)
    simulator.publish(f"boucle/v1/{OTHER_DEVICE}/telemetry", b"simulated")
    assert (f"boucle/v1/{OTHER_DEVICE}/telemetry", b"simulated") in gateway.wait_for(b"simulated")


def test_device_gets_only_its_own_commands_from_the_workshop_tools(broker, clients):
    device = connect(clients, broker, DEVICE, "device-secret")
    # A subscription to another device's commands may be granted, but nothing is delivered.
    device.subscribe(f"boucle/v1/{DEVICE}/cmd")
    device.subscribe(f"boucle/v1/{OTHER_DEVICE}/cmd")
    bench = connect(clients, broker, "boucle-workshop", "bench-secret")
    assert not bench.subscribe(f"boucle/v1/{DEVICE}/cmd/ack")[0].is_failure
    bench.publish(f"boucle/v1/{OTHER_DEVICE}/cmd", b"not-yours")
    bench.publish(f"boucle/v1/{DEVICE}/cmd", b"tare")
    seen = device.wait_for(b"tare")
    assert all(p != b"not-yours" for _, p in seen)
    device.publish(f"boucle/v1/{DEVICE}/cmd/ack", b"done")
    bench.wait_for(b"done")
    # The bench may not pose as a device.
    gateway = connect(clients, broker, "boucle-gateway", broker.env["MQTT_GATEWAY_PASSWORD"])
    gateway.subscribe(f"boucle/v1/{DEVICE}/telemetry")
    bench.publish(f"boucle/v1/{DEVICE}/telemetry", b"forged")
    device.publish(f"boucle/v1/{DEVICE}/telemetry", b"real")
    assert all(p != b"forged" for _, p in gateway.wait_for(b"real"))


def test_broker_keeps_a_persistent_session_queue_beyond_the_default_1000(broker, clients):
    """max_queued_messages is sized for an outage: 1,500 QoS 1 messages published while the
    gateway is away are all delivered when it comes back (the default would keep 1,000)."""
    env = broker.env
    first = Client("boucle-gateway", env["MQTT_GATEWAY_PASSWORD"], "boucle-gateway-queue")
    first.mqtt.connect("127.0.0.1", broker.plain_port, clean_start=False,
                       properties=_session_expiry(3600))
    first.mqtt.loop_start()
    assert first.connected.wait(WAIT)
    first.subscribe("boucle/v1/+/telemetry")
    first.close()
    device = connect(clients, broker, DEVICE, "device-secret")
    count = 1500
    for i in range(count):
        device.mqtt.publish(f"boucle/v1/{DEVICE}/telemetry", b"%d" % i, qos=1)
    device.publish(f"boucle/v1/{DEVICE}/telemetry", b"last")
    back = Client("boucle-gateway", env["MQTT_GATEWAY_PASSWORD"], "boucle-gateway-queue")
    clients.append(back)
    back.mqtt.connect("127.0.0.1", broker.plain_port, clean_start=False, properties=_session_expiry(3600))
    back.mqtt.loop_start()
    seen = back.wait_for(b"last")
    assert {p for _, p in seen} >= {b"%d" % i for i in range(count)}


def _session_expiry(seconds: int) -> mqtt.Properties:
    from paho.mqtt.packettypes import PacketTypes
    props = mqtt.Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = seconds
    return props


def test_compose_healthcheck_tells_a_running_broker_from_a_stopped_one(broker, tmp_path):
    require_binary("mosquitto_sub", "mosquitto-clients")
    test = load_compose()["services"]["mosquitto"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    command = test[1].replace("-p 1883", f"-p {broker.plain_port}")
    assert command != test[1]
    assert subprocess.run(["sh", "-c", command], check=False, timeout=30).returncode == 0
    closed = free_port()  # nothing listens there
    down = subprocess.run(["sh", "-c", test[1].replace("-p 1883", f"-p {closed}")], check=False, timeout=30)
    assert down.returncode != 0
