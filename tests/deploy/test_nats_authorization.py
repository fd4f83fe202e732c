"""deploy/nats/authorization.conf under a real 3-node NATS cluster: the shipped service
accounts, and devices added by the workshop's own writer (workshop.nats_authorization).
A device authenticates with its own password, publishes only under its own id, subscribes
(QoS 1) only to its own cmd, and may not speak the NATS protocol; the ingest gateway still
consumes through its durable consumer. NATS binds no client id to a user: what a
takeover of another device's client id does is shown, not hidden."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import paho.mqtt.client as mqtt
import pytest

from boucle.storage.sqlite import SQLiteStore
from tests.conftest import require_binary
from tests.deploy.stack import REPO
from tests.deploy.test_broker_config import WAIT, Client
from tests.gateway.known_stream import gateway_process, wait_until
from tests.servers import NatsCluster, stop_process
from workshop import nats_authorization
from workshop.credentials import generate_password

DEVICE = "ecully-fablab-grid"  # devices of the example registry
OTHER_DEVICE = "ecully-fablab-pv"
SHIPPED = REPO / "deploy" / "nats" / "authorization.conf"


@dataclass
class Cluster:
    nats: NatsCluster
    passwords: dict[str, str]
    store: Path
    gateway_log: Path


def _operator_line(password: str) -> str:
    """A bench operator's account sending commands (the Mosquitto test adds boucle-workshop
    by hand likewise; none is shipped)."""
    permissions = {"publish": {"allow": ["boucle.v1.*.cmd"]}, "subscribe": {"allow": ["boucle.v1.*.cmd.ack"]}}
    return (f'{{user: "bench", password: "{nats_authorization.hash_password(password)}", '
            f'allowed_connection_types: ["MQTT"], permissions: {json.dumps(permissions)}}}')


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    require_binary("nats-server", "nats-server")
    tmp = tmp_path_factory.mktemp("nats-auth")
    passwords = {name: generate_password() for name in ("boucle-gateway", "boucle-simulator", DEVICE, OTHER_DEVICE,
                                                         "bench")}
    text = SHIPPED.read_text()
    assert nats_authorization.device_users(text) == {}, "the shipped file must hold no device"
    for device in (DEVICE, OTHER_DEVICE):  # what `boucle flash` stages for each board
        text = nats_authorization.with_device(text, device, nats_authorization.hash_password(passwords[device]),
                                              "boucle/v1")
    text = text.replace(nats_authorization.DEVICES_END, _operator_line(passwords["bench"]) + "\n"
                        + nats_authorization.DEVICES_END)
    users = tmp / "authorization.conf"
    users.write_text(text)
    env = {"MQTT_GATEWAY_PASSWORD": passwords["boucle-gateway"], "MQTT_SIMULATOR_PASSWORD": passwords["boucle-simulator"]}
    cluster = NatsCluster(tmp / "nats", authorization=users, env=env)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()  # the nodes that did start
        raise
    store, log = tmp / "store.db", tmp / "gateway.log"
    gateway = gateway_process(log, INPUT="jetstream", NATS_SERVERS=cluster.urls, SHARE_GROUP="gateways",
                              MQTT_PORT=cluster.mqtt_ports[0], CLIENT_ID="gateway-0",
                              MQTT_USERNAME="boucle-gateway", MQTT_PASSWORD=passwords["boucle-gateway"],
                              STORE_URL=f"sqlite:///{store}", SPOOL_PATH=tmp / "spool.db", METRICS_PORT=0)
    try:
        assert wait_until(lambda: b"consuming" in log.read_bytes(), timeout=60), log.read_text()[-3000:]
        yield Cluster(cluster, passwords, store, log)
    finally:
        stop_process(gateway)
        cluster.stop()


def connect(clients: list[Client], cluster: Cluster, username: str, client_id: str | None = None,
            password: str | None = None, node: int = 0, clean_session: bool = True) -> Client:
    """An MQTT 3.1.1 client (NATS speaks no other) on `node`; the CONNACK is checked by the caller."""
    c = Client(username, cluster.passwords.get(username, "") if password is None else password,
               client_id or f"test-{username}-{len(clients)}", protocol=mqtt.MQTTv311, clean_session=clean_session)
    clients.append(c)
    c.connect(cluster.nats.mqtt_ports[node])
    return c


def telemetry(device: str, seq: int) -> bytes:
    return json.dumps({"v": 1, "device": device, "boot": 1,
                       "readings": [{"seq": seq, "ts": int(time.time()) - 60 * seq, "energy_wh": 1000 + seq}]}).encode()


def stored(cluster: Cluster, device: str) -> int:
    return SQLiteStore(cluster.store).reading_counts([device], 0, 2**31)[device] if cluster.store.exists() else 0


def test_wrong_or_missing_password_is_refused(cluster, clients):
    for username, password in ((DEVICE, "not-its-password"), (DEVICE, cluster.passwords[OTHER_DEVICE]),
                               ("unknown-device", "whatever"), ("boucle-gateway", "change-me-gateway")):
        c = connect(clients, cluster, username, password=password)
        assert c.reason.is_failure, f"{username} was let in with a wrong password"
    assert not connect(clients, cluster, DEVICE).reason.is_failure, "the device's own password was refused"


def test_a_device_may_not_use_the_nats_protocol(cluster):
    """Device users are MQTT-only: over NATS, `$MQTT.sub.>` would read others' deliveries."""
    async def attempt() -> None:
        nc = await nats.connect(cluster.nats.urls.split(",")[0], user=DEVICE, password=cluster.passwords[DEVICE],
                                allow_reconnect=False, connect_timeout=WAIT, max_reconnect_attempts=0)
        await nc.close()

    with pytest.raises(Exception, match="(?i)authorization"):
        asyncio.run(attempt())


def test_device_readings_reach_the_gateway_and_it_cannot_pose_as_another(cluster, clients):
    device = connect(clients, cluster, DEVICE, client_id=DEVICE, node=1)
    assert not device.reason.is_failure, device.reason
    # Forbidden first, then allowed, from the same connection: NATS stores one publisher's
    # QoS 1 messages in order, so when the allowed reading is stored the forbidden one
    # would have been too.
    device.publish(f"boucle/v1/{OTHER_DEVICE}/telemetry", telemetry(OTHER_DEVICE, 1))
    device.publish(f"boucle/v1/{OTHER_DEVICE}/status", b'{"online": true}')
    device.publish(f"boucle/v1/{DEVICE}/telemetry", telemetry(DEVICE, 1))
    assert wait_until(lambda: stored(cluster, DEVICE) == 1, timeout=WAIT * 4), cluster.gateway_log.read_text()[-3000:]
    assert stored(cluster, OTHER_DEVICE) == 0
    letters = SQLiteStore(cluster.store).dead_letters(1000)
    assert not [d for d in letters if OTHER_DEVICE in d.topic or d.device == OTHER_DEVICE], letters
    assert not device.dropped.is_set()
    # Health goes at QoS 0, which NATS does not store: the gateway takes it as a plain
    # NATS message (its account may subscribe to health, and nothing else of the devices').
    health = {"v": 1, "boot": 1, "uptime_s": 60, "heap_free": 81234, "rssi_dbm": -67, "buffer_depth": 0,
              "dropped": 0, "reset_cause": "power_on", "fw": "0.1.0"}
    device.mqtt.publish(f"boucle/v1/{DEVICE}/health", json.dumps(health).encode(), qos=0)
    assert wait_until(lambda: SQLiteStore(cluster.store).device_states([DEVICE]).get(DEVICE, {}).get("health")
                      is not None, timeout=WAIT * 4), cluster.gateway_log.read_text()[-3000:]
    assert SQLiteStore(cluster.store).device_states([DEVICE])[DEVICE]["health"].doc["rssi_dbm"] == -67
    # The simulator's account publishes for any device.
    simulator = connect(clients, cluster, "boucle-simulator", node=2)
    simulator.publish(f"boucle/v1/{OTHER_DEVICE}/telemetry", telemetry(OTHER_DEVICE, 2))
    assert wait_until(lambda: stored(cluster, OTHER_DEVICE) == 1, timeout=WAIT * 4)


def test_device_subscribes_only_to_its_own_commands(cluster, clients):
    device = connect(clients, cluster, DEVICE, client_id=f"{DEVICE}-cmd", node=2)
    other = connect(clients, cluster, OTHER_DEVICE, client_id=OTHER_DEVICE, node=0)
    # QoS 1 on its own cmd is granted (the device's `$MQTT.sub.>`): the firmware's subscription.
    assert not device.subscribe(f"boucle/v1/{DEVICE}/cmd")[0].is_failure
    assert not other.subscribe(f"boucle/v1/{OTHER_DEVICE}/cmd")[0].is_failure
    # Another device's cmd, every device's cmd, anything else, and NATS's own delivery
    # subjects are refused.
    for topic in (f"boucle/v1/{OTHER_DEVICE}/cmd", "boucle/v1/+/cmd", "boucle/v1/#", "#", "$MQTT/sub/#"):
        assert device.subscribe(topic)[0].is_failure, f"{DEVICE} was granted {topic}"
    bench = connect(clients, cluster, "bench", node=1)
    bench.publish(f"boucle/v1/{OTHER_DEVICE}/cmd", b"not-yours")
    bench.publish(f"boucle/v1/{DEVICE}/cmd", b"tare")
    seen = device.wait_for(b"tare")
    assert other.wait_for(b"not-yours")
    assert all(p != b"not-yours" for _, p in seen)
    # The gateway's account reads the stream, but may not publish as a device over MQTT.
    gateway = connect(clients, cluster, "boucle-gateway", node=0)
    gateway.publish(f"boucle/v1/{DEVICE}/cmd", b"from-gateway")
    bench.publish(f"boucle/v1/{DEVICE}/cmd", b"marker")
    assert all(p != b"from-gateway" for _, p in device.wait_for(b"marker"))


def test_client_id_takeover_drops_the_victim_but_grants_nothing(cluster, clients):
    """NATS has no use_username_as_clientid: a device connecting with another's client id
    replaces that connection, and with a clean session discards its session (its QoS 1
    cmd subscription). It still publishes and reads only what its own user may."""
    victim = connect(clients, cluster, OTHER_DEVICE, client_id="victim-id", node=0, clean_session=False)
    assert not victim.subscribe(f"boucle/v1/{OTHER_DEVICE}/cmd")[0].is_failure
    before = stored(cluster, OTHER_DEVICE)
    attacker = connect(clients, cluster, DEVICE, client_id="victim-id", node=1)
    assert not attacker.reason.is_failure
    assert victim.dropped.wait(WAIT), "NATS kept both connections with one client id"
    attacker.publish(f"boucle/v1/{OTHER_DEVICE}/telemetry", telemetry(OTHER_DEVICE, 3))
    assert attacker.subscribe(f"boucle/v1/{OTHER_DEVICE}/cmd")[0].is_failure
    attacker.publish(f"boucle/v1/{DEVICE}/telemetry", telemetry(DEVICE, 3))
    assert wait_until(lambda: stored(cluster, DEVICE) >= 2, timeout=WAIT * 4)
    assert stored(cluster, OTHER_DEVICE) == before
    attacker.close()
    # The victim's session is gone: back with clean_session=False, none is present (its
    # firmware subscribes again at every connect, so it gets its commands again).
    victim.mqtt.loop_stop()
    back = Client(OTHER_DEVICE, cluster.passwords[OTHER_DEVICE], "victim-id", protocol=mqtt.MQTTv311,
                  clean_session=False)
    clients.append(back)
    assert wait_until(lambda: _reconnects(back, cluster.nats.mqtt_ports[0]), timeout=WAIT)
    assert back.session_present is False


def _reconnects(c: Client, port: int) -> bool:
    """NATS holds back a client id that just changed hands (about a second): retry."""
    if c.connected.is_set() and c.reason is not None and not c.reason.is_failure:
        return True
    c.connected.clear()
    c.mqtt.loop_stop()
    try:
        c.connect(port)
    except AssertionError:
        return False
    return not c.reason.is_failure
