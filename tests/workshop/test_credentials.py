"""Device credentials: mosquitto_passwd's hash format, and a real Mosquitto enforcing them."""

from __future__ import annotations

import shutil
import subprocess
import threading

import paho.mqtt.client as mqtt
import pytest

from tests.workshop.conftest import OBSERVER, OBSERVER_PASSWORD
from workshop import credentials

PREFIX = "boucle/v1"


def test_hash_has_mosquitto_passwd_layout_and_checks():
    hashed = credentials.hash_password("s3cret", salt=b"0123456789ab")
    _, kind, iterations, salt, digest = hashed.split("$")
    assert (kind, iterations, salt) == ("7", "101", "MDEyMzQ1Njc4OWFi")
    assert len(digest) == 88  # 64 bytes in base64
    assert credentials.check_password("s3cret", hashed)
    assert not credentials.check_password("s3cret!", hashed)


def test_hash_written_by_mosquitto_passwd_checks(tmp_path):
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        from tests.conftest import require_binary
        require_binary("mosquitto_passwd", "mosquitto")
    path = tmp_path / "pw"
    subprocess.run([tool, "-c", "-b", str(path), "dev1", "from-the-tool"], check=True)
    users = credentials.password_users(path.read_text())
    assert credentials.check_password("from-the-tool", users["dev1"])
    assert not credentials.check_password("other", users["dev1"])


def test_password_file_entry_is_replaced_not_duplicated():
    text = "alice:$7$101$a$b\nbob:$7$101$c$d\n"
    out = credentials.with_password(text, "alice", "$7$101$e$f")
    assert credentials.password_users(out) == {"alice": "$7$101$e$f", "bob": "$7$101$c$d"}
    assert out.count("alice:") == 1


def test_acl_block_replaced_and_others_kept():
    text = ("# gateway\nuser gateway\ntopic read boucle/v1/#\n\n"
            "user dev-1\ntopic write boucle/v1/dev-1/#\ntopic readwrite #\n"
            "pattern read $SYS/broker/%u\n")
    out = credentials.with_acl(text, "dev-1", PREFIX)
    assert "topic readwrite #" not in out  # the old (too wide) block of dev-1 is gone
    assert "user gateway\ntopic read boucle/v1/#" in out
    assert "pattern read $SYS/broker/%u" in out
    assert out.endswith("user dev-1\ntopic write boucle/v1/dev-1/#\ntopic read boucle/v1/dev-1/cmd\n")


def test_passwords_are_random_and_fit_the_file():
    a, b = credentials.generate_password(), credentials.generate_password()
    assert a != b and len(a) >= 32 and ":" not in a


class Client:
    """A paho client that records what it receives."""

    def __init__(self, port: int, username: str, password: str, client_id: str):
        self.messages: list[tuple[str, bytes]] = []
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.subacks: list[str] = []
        self.disconnected = threading.Event()
        self.reason: str | None = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = lambda *a: self.disconnected.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.connected.wait(10)

    def _on_connect(self, c, u, f, reason, p):
        self.reason = None if not reason.is_failure else str(reason)
        self.connected.set()

    def _on_subscribe(self, c, u, mid, reasons, p):
        self.subacks.append(str(reasons[0]))
        self.subscribed.set()

    def wait_subacks(self, n: int) -> None:
        for _ in range(200):
            if len(self.subacks) >= n:
                return
            threading.Event().wait(0.05)
        raise AssertionError(f"only {len(self.subacks)} SUBACKs")

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def _provision(broker, device_id: str) -> str:
    password = credentials.generate_password()
    broker.password_file.write_text(credentials.with_password(
        broker.password_file.read_text(), device_id, credentials.hash_password(password)))
    broker.acl_file.write_text(credentials.with_acl(broker.acl_file.read_text(), device_id, PREFIX))
    return password


@pytest.fixture
def devices(auth_broker):
    """Two provisioned devices, the broker restarted on the generated files."""
    passwords = {d: _provision(auth_broker, d) for d in ("esp32-aaaaaa", "esp32-bbbbbb")}
    auth_broker.server.restart()
    return passwords


def _wait_for(condition, what: str) -> None:
    for _ in range(200):
        if condition():
            return
        threading.Event().wait(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_real_mosquitto_accepts_device_and_enforces_acl(auth_broker, devices):
    observer = Client(auth_broker.port, OBSERVER, OBSERVER_PASSWORD, "observer")
    assert observer.reason is None
    observer.client.subscribe(f"{PREFIX}/#", qos=1)
    observer.wait_subacks(1)

    device = Client(auth_broker.port, "esp32-aaaaaa", devices["esp32-aaaaaa"], "esp32-aaaaaa")
    assert device.reason is None, device.reason
    device.client.subscribe(f"{PREFIX}/esp32-aaaaaa/cmd", qos=1)
    device.client.subscribe(f"{PREFIX}/esp32-bbbbbb/cmd", qos=1)
    device.wait_subacks(2)
    device.client.publish(f"{PREFIX}/esp32-aaaaaa/telemetry", b"mine", qos=1).wait_for_publish(5)
    observer.client.publish(f"{PREFIX}/esp32-bbbbbb/cmd", b"not for a", qos=1).wait_for_publish(5)
    observer.client.publish(f"{PREFIX}/esp32-aaaaaa/cmd", b"for a", qos=1).wait_for_publish(5)
    # A marker through the same connection: once it arrives, everything sent before it has.
    device.client.publish(f"{PREFIX}/esp32-aaaaaa/health", b"marker", qos=1).wait_for_publish(5)
    _wait_for(lambda: (f"{PREFIX}/esp32-aaaaaa/health", b"marker") in observer.messages
              and device.messages, "the marker and the command")
    assert (f"{PREFIX}/esp32-aaaaaa/telemetry", b"mine") in observer.messages
    assert device.messages == [(f"{PREFIX}/esp32-aaaaaa/cmd", b"for a")]  # not b's cmd
    device.close()

    # Publishing under another device's id: Mosquitto 2.0 denies it and drops the
    # connection of a 3.1.1 client (seen with 2.0.11); the message never reaches anyone.
    for qos in (0, 1):
        forger = Client(auth_broker.port, "esp32-aaaaaa", devices["esp32-aaaaaa"], f"forger-{qos}")
        forger.client.publish(f"{PREFIX}/esp32-bbbbbb/telemetry", b"forged", qos=qos)
        _wait_for(forger.disconnected.is_set, "the broker to drop the forger")
        forger.close()
    again = Client(auth_broker.port, "esp32-aaaaaa", devices["esp32-aaaaaa"], "esp32-aaaaaa")
    again.client.publish(f"{PREFIX}/esp32-aaaaaa/health", b"marker 2", qos=1).wait_for_publish(5)
    _wait_for(lambda: (f"{PREFIX}/esp32-aaaaaa/health", b"marker 2") in observer.messages, "marker 2")
    assert f"{PREFIX}/esp32-bbbbbb/telemetry" not in [t for t, _ in observer.messages]
    again.close()
    observer.close()


def test_real_mosquitto_rejects_wrong_password(auth_broker, devices):
    wrong = Client(auth_broker.port, "esp32-aaaaaa", devices["esp32-aaaaaa"] + "x", "wrong")
    assert wrong.reason is not None  # CONNACK "Not authorized" (3.1.1 return code 5)
    wrong.close()
    other = Client(auth_broker.port, "esp32-aaaaaa", devices["esp32-bbbbbb"], "swapped")
    assert other.reason is not None
    other.close()
