"""The device loop on CPython, its MQTT layer (real umqtt.simple, real sockets) against a
real Mosquitto that is stopped and restarted mid-run."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as paho
import pytest
from boucle_fw import config
from boucle_fw.accounting import CounterStore
from boucle_fw.buffer import ReadingBuffer
from boucle_fw.device import Device
from boucle_fw.hw.mqtt import MqttLink
from boucle_fw.timebase import Timebase, ticks_diff

from tests.firmware import umqtt_cpython
from tests.firmware.virtual import wait_until

DEVICE = "ecully-fablab-grid"
PREFIX = "boucle/v1"


def ticks_ms() -> int:
    return int(time.monotonic() * 1000) & ((1 << 30) - 1)


class Cell:
    def __init__(self):
        self.data = None

    def get(self):
        return self.data

    def set(self, d):
        self.data = d


class LoadSensor:
    """Stands in for a CT clamp: a load that steps every few cycles."""

    def __init__(self):
        self.n = 0

    def read(self):
        self.n += 1
        return {"power_w": 400.0 + 100 * (self.n // 5), "current_a": 2.0}


class Subscriber:
    """A paho client with a persistent session, so that nothing is lost across restarts."""

    def __init__(self, port: int):
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="fw-test-sub",
                             clean_session=False)
        self.c.on_message = self._on_message
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe(
            [(f"{PREFIX}/#", 1), ("homeassistant/#", 1)])
        self.c.reconnect_delay_set(0.1, 0.5)
        self.c.connect("127.0.0.1", port, keepalive=10)
        self.c.loop_start()

    def _on_message(self, c, u, msg):
        with self.lock:
            self.messages.append((msg.topic, msg.payload, msg.retain))

    def on(self, leaf: str) -> list[dict]:
        return self.topic(f"{PREFIX}/{DEVICE}/{leaf}")

    def topic(self, name: str) -> list[dict]:
        with self.lock:
            return [json.loads(p) for t, p, _ in self.messages if t == name]

    def identities(self) -> list[tuple]:
        out = []
        for body in self.on("telemetry"):
            out.extend((body["device"], body["boot"], r["seq"]) for r in body["readings"])
        return out

    def wait(self, predicate, what: str, timeout: float = 30) -> None:
        wait_until(predicate, what, timeout)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture
def umqtt():
    return umqtt_cpython.load()


def _device(umqtt, port, tmp_path, boot=5):
    cfg = config.make_config(DEVICE, "w", "p", "127.0.0.1", port, DEVICE, "pw", None, "energy-ct")

    def factory(tls):
        return umqtt.MQTTClient(DEVICE, "127.0.0.1", port, DEVICE, "pw", 10, tls)

    link = MqttLink(factory, DEVICE, PREFIX, boot, "0.1.0", "power_on", ticks_ms, ticks_diff,
                    timeout_s=2, keepalive_s=10, backoff_ms=(20, 200))
    tb = Timebase(ticks_ms)
    tb.sync(1767225600)
    store = CounterStore(Cell(), Cell())
    buf = ReadingBuffer(2000, 16, 8, str(tmp_path / "buffer"))
    dev = Device(cfg, boot, tb, link, buf, [("ct", LoadSensor())], store.restore(), store,
                 None, lambda: {"heap_free": 1, "rssi": -60, "reset_cause": "power_on"}, "0.1.0")
    return dev, link


def _drain(dev, link, deadline_s=30):
    deadline = time.monotonic() + deadline_s
    while dev.buffer.depth and time.monotonic() < deadline:
        if link.connect():
            dev.flush()
        link.poll(dev.on_command)
        time.sleep(0.02)
    assert dev.buffer.depth == 0, f"{dev.buffer.depth} readings never left: {link.last_error}"


def test_every_reading_once_in_order_across_broker_restarts(mosquitto, umqtt, tmp_path):
    sub = Subscriber(mosquitto.port)
    sub.wait(lambda: sub.c.is_connected(), "subscriber")
    dev, link = _device(umqtt, mosquitto.port, tmp_path)
    try:
        for i in range(60):
            if i == 15:
                mosquitto.stop()  # a long outage: readings pile up and go to flash
            if i == 35:
                mosquitto.start()
            if i == 45:
                mosquitto.restart()  # a short one, between two cycles
            dev.cycle()
            link.poll(dev.on_command)
            time.sleep(0.01)
        _drain(dev, link)
        sub.wait(lambda: len(set(sub.identities())) >= 60, "60 readings")
        time.sleep(0.3)  # let any late duplicate arrive before counting
        ids = sub.identities()
        expected = [(DEVICE, 5, s) for s in range(60)]
        assert ids == expected  # each once, in order
        energies = [r["energy_wh"] for b in sub.on("telemetry") for r in b["readings"]]
        assert energies == sorted(energies)
        assert link.connects >= 3 and link.failures >= 1
        assert dev.buffer.dropped == 0
        births = [s for s in sub.on("status") if s.get("online")]
        assert len(births) >= 3 and births[-1]["boot"] == 5
    finally:
        link.close()
        sub.close()


def test_last_will_and_commands_over_the_broker(mosquitto, umqtt, tmp_path):
    sub = Subscriber(mosquitto.port)
    sub.wait(lambda: sub.c.is_connected(), "subscriber")
    dev, link = _device(umqtt, mosquitto.port, tmp_path, boot=6)
    try:
        assert link.connect()
        sub.wait(lambda: any(s.get("online") for s in sub.on("status")), "birth message")
        sub.c.publish(f"{PREFIX}/{DEVICE}/cmd",
                      json.dumps({"id": "c-1", "cmd": "set_interval", "args": {"seconds": 300}}), qos=1)
        sub.wait(lambda: (link.poll(dev.on_command) or True) and sub.on("cmd/ack"), "command ack", 10)
        ack = sub.on("cmd/ack")[0]
        assert ack == {"v": 1, "id": "c-1", "cmd": "set_interval", "ok": True, "result": {"interval_s": 300}}
        assert dev.interval_s == 300
        link.drop("simulated power cut")  # socket closed without DISCONNECT
        sub.wait(lambda: sub.on("status")[-1] == {"v": 1, "online": False}, "last will")
    finally:
        link.close()
        sub.close()


@pytest.mark.parametrize("start", [0, (1 << 30) - 7000], ids=["boot", "before-ticks-wrap"])
def test_pings_when_idle_and_backs_off_when_the_broker_is_gone(mosquitto, umqtt, start):
    now = [start]

    def ticks():
        return now[0] & ((1 << 30) - 1)  # time.ticks_ms() on the ESP32

    def factory(tls):
        return umqtt.MQTTClient(DEVICE, "127.0.0.1", mosquitto.port, DEVICE, "pw", 10, tls)

    link = MqttLink(factory, DEVICE, PREFIX, 1, "0.1.0", "power_on", ticks, ticks_diff,
                    timeout_s=2, keepalive_s=10, backoff_ms=(1000, 4000))
    assert link.connect()
    now[0] += 4000
    link.poll()
    assert link.pings == 0  # not idle long enough (half the keepalive)
    now[0] += 2000
    link.poll()
    assert link.pings == 1
    time.sleep(0.2)
    link.poll()  # reads the PINGRESP
    assert link.connected
    mosquitto.stop()
    deadline = time.monotonic() + 10
    while link.connected and time.monotonic() < deadline:
        link.poll()  # the closed socket reads as end of stream
        time.sleep(0.05)
    assert not link.connected
    tries = []
    for _ in range(12):  # 12 s of loop turns, one per second
        before = link.attempts
        link.connect()
        tries.append(link.attempts - before)
        now[0] += 1000
    # the lost connection already counts as a failure: backoff 1, 2, 4, 4 s, so attempts
    # at 1, 3, 7 and 11 s, not at every turn
    assert tries == [0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]
    mosquitto.start()
    now[0] += 4000
    assert link.connect() and link.backoff == 1000
    link.close()


class CountingSocket:
    """Counts the writes that reach the socket under MqttLink's TimeoutSocket."""

    def __init__(self, sock):
        self.sock = sock
        self.writes = []

    def write(self, data, n=None):
        self.writes.append(bytes(data if n is None else data[:n]))
        return self.sock.write(data, n)

    def read(self, n):
        return self.sock.read(n)

    def close(self):
        self.sock.close()


def test_one_write_per_mqtt_packet_without_nagle(mosquitto, umqtt, tmp_path):
    import socket

    _dev, link = _device(umqtt, mosquitto.port, tmp_path, boot=7)
    try:
        assert link.connect()
        wrapped = link.client.sock
        # umqtt.simple writes header, topic, packet id and payload separately; Nagle would
        # hold each piece after the first until the broker's delayed ACK (40 ms)
        assert wrapped.raw.s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        counting = CountingSocket(wrapped.sock)
        wrapped.sock = counting
        assert link.publish(f"{PREFIX}/{DEVICE}/telemetry", b'{"v":1}', 1, False)
        assert link.publish(f"{PREFIX}/{DEVICE}/health", b'{"v":1}', 0, False)
        assert len(counting.writes) == 2  # one per packet
        qos1, qos0 = counting.writes
        assert qos1[0] == 0x32 and f"{DEVICE}/telemetry".encode() in qos1 and qos1.endswith(b'{"v":1}')
        assert qos0[0] == 0x30 and b"/health" in qos0  # QoS 0: sent at once, nothing to read back
    finally:
        link.close()
