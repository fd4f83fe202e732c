"""Node loss on the clustered ingest path: the known stream (repeats, out-of-order and late
readings, invalid messages) published over MQTT to the three nodes of a real NATS cluster,
taken by two gateways sharing one JetStream durable consumer, while a broker node is
SIGKILLed and restarted, the store goes down, one gateway freezes and the other is
SIGKILLed with a full spool and a full inbox, then restarted. Afterwards the store
holds exactly the truth, once, and every invalid message is a dead letter. Once with a node
that does not lead the messages stream, once with the one that does."""

import json
import random
import signal
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from boucle.settings import GatewaySettings, SettingsError, load_settings
from boucle.storage import open_store
from gateway.input import Inbox, Message, open_input
from gateway.jetstream import STREAM
from tests.gateway.known_stream import (
    DEVICES,
    assert_holds_the_truth,
    gateway_process,
    make_stream,
    wait_until,
)


class Device:
    """The MQTT client of the devices homed on one node: 3.1.1, QoS 1, a persistent session
    (as the firmware), so what was not PUBACKed when its node died is sent again."""

    def __init__(self, name: str, port: int):
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=name,
                                  clean_session=False, protocol=MQTTProtocolVersion.MQTTv311)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.2, 1)
        self.acked: set[int] = set()
        self.mids: list[int] = []
        self.client.on_publish = lambda _c, _u, mid, _rc, _p: self.acked.add(mid)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes) -> None:
        self.mids.append(self.client.publish(topic, payload, qos=1).mid)

    def all_acked(self) -> bool:
        return self.acked.issuperset(self.mids)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.parametrize("victim", ["follower", "leader"])
def test_node_and_gateway_loss_lose_nothing_store_nothing_twice(victim, tmp_path, nats_cluster, influxdb):
    cluster = nats_cluster
    stream, truth, invalid_errors = make_stream(random.Random(11))
    database = f"cluster_{victim}"
    logs = [tmp_path / f"gateway-{i}.log" for i in (0, 1)]

    def start_gateway(i: int):
        return gateway_process(logs[i], INPUT="jetstream", NATS_SERVERS=cluster.urls, SHARE_GROUP="gateways",
                               MQTT_PORT=cluster.mqtt_ports[i], CLIENT_ID=f"gateway-{i}", NATS_ACK_WAIT_S=3,
                               STORE_URL=f"influx+http://127.0.0.1:{influxdb.port}/{database}",
                               SPOOL_PATH=tmp_path / f"spool-{i}.db", METRICS_PORT=0,
                               SPOOL_MAX_ROWS=20 if i == 1 else 100_000)

    gateways = [start_gateway(0), start_gateway(1)]
    assert wait_until(lambda: all(b"consuming" in log.read_bytes() for log in logs), timeout=60), \
        [log.read_text()[-2000:] for log in logs]
    # Each device is homed on one node, as a board on the broker address it was given.
    homes = {device: i % 3 for i, device in enumerate(DEVICES)}
    devices = [Device(f"devices-{i}-{victim}", port) for i, port in enumerate(cluster.mqtt_ports)]
    leader = cluster.stream_leader(STREAM)
    node = leader if victim == "leader" else (leader + 1) % 3
    sent = 0
    done = threading.Event()

    def publish() -> None:
        nonlocal sent
        for topic, payload in stream:
            devices[homes.get(topic.split("/")[2], 0)].publish(topic, payload)
            sent += 1
            time.sleep(0.01)
        done.set()

    threading.Thread(target=publish, daemon=True).start()
    n = len(stream)

    def kill_node() -> None:
        cluster.kill(node)
        # The stream goes on: another node leads it now (or still does, when a follower died).
        assert wait_until(lambda: cluster.stream_leader(STREAM) != node, timeout=30)

    def kill_gateway() -> None:
        # The store goes down and gateway 0 freezes (SIGSTOP: what it was handed and did not
        # ack goes to gateway 1 after the ack wait): gateway 1's small spool fills, then its
        # inbox, with messages delivered and not acked; it dies holding both. Those of its
        # inbox must come again (to gateway 0, thawed), those of its spool once it is back.
        influxdb.stop()
        gateways[0].send_signal(signal.SIGSTOP)
        try:
            assert wait_until(lambda: b"ALARM spool holds" in logs[1].read_bytes(), timeout=60), \
                logs[1].read_text()[-2000:]
            gateways[1].send_signal(signal.SIGKILL)
            gateways[1].wait()
        finally:
            gateways[0].send_signal(signal.SIGCONT)

    def restart_gateway() -> None:
        gateways[1] = start_gateway(1)

    events = [
        (n // 5, kill_node),
        (2 * n // 5, kill_gateway),
        (3 * n // 5, lambda: (cluster.start_node(node), influxdb.start())),
        (4 * n // 5, restart_gateway),
    ]
    try:
        for at, action in events:
            while sent < at:
                time.sleep(0.02)
            action()
        assert done.wait(120)
        assert wait_until(lambda: all(d.all_acked() for d in devices), timeout=120), \
            "the devices could not deliver their stream"
        # The restarted gateway takes its share again (and drains what its spool held).
        assert wait_until(lambda: logs[1].read_bytes().count(b"consuming") == 2, timeout=60), \
            logs[1].read_text()[-2000:]
        store = open_store(f"influx+http://127.0.0.1:{influxdb.port}/{database}")
        assert_holds_the_truth(store, truth, invalid_errors, lambda: "\n".join(
            [log.read_text()[-2000:] for log in logs] + [json.dumps(cluster.consumers(STREAM), default=str)]),
            timeout=90)
    finally:
        for device in devices:
            device.close()
        for gateway in gateways:
            if gateway.poll() is None:
                gateway.send_signal(signal.SIGTERM)
        for gateway in gateways:
            gateway.wait(30)
    assert all(g.returncode == 0 for g in gateways)


def test_the_consumer_gives_back_the_topics_devices_published(nats_cluster, tmp_path):
    """NATS stores an MQTT topic as a subject ('/' → '.', an empty level as '/'): the
    input turns it back into the topic, and leaves out what is not telemetry, status or
    health (a device's cmd/ack), as the MQTT input's subscription does."""
    settings = load_settings(GatewaySettings, {}, input="jetstream", nats_servers=nats_cluster.urls,
                             mqtt_port=nats_cluster.mqtt_ports[0], client_id="topics", share_group="topics")
    gateway_input = open_input(settings)
    inbox = Inbox(100)
    for _ in range(100):  # a full inbox: the input fetches nothing until the test takes these
        inbox.put(Message("filler", b"", None, 1, False, 0.0))
    sessions = []
    gateway_input.start(inbox, sessions.append)
    try:
        device = Device("topics-device", nats_cluster.mqtt_ports[2])
        published = time.time() - 1  # the nodes' clock is this machine's (a second for rounding)
        topics = ["boucle/v1/dev-1/telemetry", "boucle/v1/dev-1/cmd/ack", "boucle/v1//telemetry",
                  "boucle/v1/dev-2/status", "other/v1/dev-1/telemetry"]
        for topic in topics:
            device.publish(topic, topic.encode())
        assert wait_until(device.all_acked, timeout=30)
        assert len(inbox.take(100, 0.1)) == 100  # now all five come in one fetch
        got = []
        assert wait_until(lambda: got.extend(inbox.take(100, 0.1)) or len(got) >= 3, timeout=30)
        time.sleep(1)  # anything else would have come by now
        got.extend(inbox.take(100, 0.1))
        assert [(m.topic, m.payload) for m in got] == [(t, t.encode()) for t in (
            "boucle/v1/dev-1/telemetry", "boucle/v1//telemetry", "boucle/v1/dev-2/status")]
        # Each is received when the cluster stored it, not when a fetch handed the batch over.
        assert len({m.received for m in got}) == len(got)
        assert all(published <= m.received <= time.time() for m in got)
        assert sessions == [False]  # the durable consumer was made now
        device.close()
    finally:
        gateway_input.close()


def test_an_unknown_input_names_the_setting():
    with pytest.raises(SettingsError, match="BOUCLE_INPUT='kafka': use one of mqtt, jetstream"):
        open_input(load_settings(GatewaySettings, {"BOUCLE_INPUT": "kafka"}))
