"""What the unix-port tests share: a broker as production runs it (per-device passwords
and the shipped ACL, a TLS listener with certificates from deploy/certs/make-certs.sh),
an observer on it, the gateway in-process, and virtual boards in the test's folder."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
from boucle_fw import config

from boucle.settings import GatewaySettings, load_settings
from boucle.storage.sqlite import SQLiteStore
from gateway.service import Gateway
from simulator.boards import Interpreter, VirtualBoard
from tests.conftest import EXAMPLE_REGISTRY, require_binary
from tests.servers import Mosquitto, free_port
from workshop.credentials import hash_password, with_acl, with_password

REPO = Path(__file__).resolve().parents[2]
PREFIX = "boucle/v1"
DEVICE = "ecully-fablab-grid"  # devices of the example registry, which the gateway knows
BIN = "ecully-fablab-bin-residual"
LASER = "ecully-fablab-laser"  # a CT clamp
PV = "ecully-fablab-pv"  # an S0 meter
WATER = "ecully-fablab-water"  # a water meter's pulse contact
WAIT = 60.0  # seconds: a bound on waiting for a message, never an assertion on speed
PASSWORDS = {"boucle-gateway": "gateway-secret", "boucle-workshop": "bench-secret"}
MINUTE = 60_000
HOUR = 3_600_000


@dataclass
class Broker:
    mosquitto: Mosquitto
    tls_port: int
    certs: Path
    passwords: dict[str, str]

    @property
    def port(self) -> int:
        return self.mosquitto.port

    def stop(self) -> None:
        self.mosquitto.stop()

    def start(self) -> None:
        self.mosquitto.start()


def make_certs(out: Path) -> Path:
    require_binary("openssl", "openssl")
    done = subprocess.run(["sh", str(REPO / "deploy" / "certs" / "make-certs.sh"), "-o", str(out)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return out


def secured_broker(workdir: Path, devices: list[str]) -> Broker:
    """Mosquitto with a password per user (devices by their id) and deploy/mosquitto/acl,
    a plain listener and a TLS one. set_tcp_nodelay: see docs/simulator.md (virtual boards)."""
    require_binary("mosquitto", "mosquitto")
    workdir.mkdir(parents=True, exist_ok=True)
    passwords = dict(PASSWORDS)
    for d in devices:
        passwords[d] = f"{d}-password"
    passwd, acl = "", (REPO / "deploy" / "mosquitto" / "acl").read_text()
    for user, password in passwords.items():
        passwd = with_password(passwd, user, hash_password(password))
    for d in devices:
        acl = with_acl(acl, d, PREFIX)
    (workdir / "passwd").write_text(passwd)
    (workdir / "acl").write_text(acl)
    certs = make_certs(workdir / "certs")
    tls_port = free_port()
    extra = "\n".join([
        "per_listener_settings false", "allow_anonymous false", "set_tcp_nodelay true",
        f"password_file {workdir / 'passwd'}", f"acl_file {workdir / 'acl'}",
        f"listener {tls_port} 127.0.0.1", f"cafile {certs / 'ca.crt'}",
        f"certfile {certs / 'server.crt'}", f"keyfile {certs / 'server.key'}"])
    broker = Mosquitto(workdir / "mosquitto", extra_config=extra).start()
    return Broker(broker, tls_port, certs, passwords)


class Observer:
    """A paho client as the bench operator (boucle-workshop): reads every device's topics,
    sends commands; persistent session, so nothing is missed across broker restarts."""

    def __init__(self, broker: Broker, client_id: str = "fw-test-observer"):
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.c.username_pw_set("boucle-workshop", broker.passwords["boucle-workshop"])
        self.c.on_message = self._on_message
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe(
            [(f"{PREFIX}/+/telemetry", 1), (f"{PREFIX}/+/status", 1), (f"{PREFIX}/+/health", 1),
             (f"{PREFIX}/+/cmd/ack", 1)])
        self.c.reconnect_delay_set(0.1, 0.5)
        self.c.connect("127.0.0.1", broker.port, keepalive=30)
        self.c.loop_start()
        self.wait(self.c.is_connected, "observer connected")

    def _on_message(self, c, u, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload, msg.retain))

    def on(self, device: str, leaf: str) -> list[dict]:
        name = f"{PREFIX}/{device}/{leaf}"
        with self.lock:
            return [json.loads(p) for t, p, _ in self.messages if t == name]

    def readings(self, device: str) -> list[tuple[int, dict]]:
        return [(b["boot"], r) for b in self.on(device, "telemetry") for r in b["readings"]]

    def command(self, device: str, cmd_id: str, cmd: str, **args) -> dict:
        """Send a command; its ack arrives once the board has run (the caller runs it)."""
        body = {"id": cmd_id, "cmd": cmd, "args": args}
        self.c.publish(f"{PREFIX}/{device}/cmd", json.dumps(body), qos=1).wait_for_publish(WAIT)
        return body

    def ack(self, device: str, cmd_id: str) -> dict | None:
        return next((a for a in self.on(device, "cmd/ack") if a["id"] == cmd_id), None)

    def wait(self, predicate, what: str, timeout: float = WAIT) -> None:
        wait_until(predicate, what, timeout)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def publish_as(broker: Broker, user: str, messages: list[tuple[str, bytes]]) -> None:
    """Publish (topic, payload) pairs at QoS 1 with `user`'s password, each acknowledged."""
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"{user}-impostor", protocol=paho.MQTTv311)
    c.username_pw_set(user, broker.passwords[user])
    c.connect("127.0.0.1", broker.port, keepalive=30)
    c.loop_start()
    try:
        for topic, payload in messages:
            c.publish(topic, payload, qos=1).wait_for_publish(WAIT)
    finally:
        c.loop_stop()
        c.disconnect()


def wait_until(predicate, what: str, timeout: float = WAIT) -> None:
    """Poll predicate() until true; AssertionError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def start_gateway(broker: Broker, workdir: Path, keys: dict[str, str] | None = None) -> tuple[Gateway, SQLiteStore]:
    """`boucle gateway` in-process: the broker's gateway user, SQLite in workdir, and a
    device key store holding `keys` (device id → hex key, as boucle flash writes them)."""
    db = workdir / "boucle.db"
    key_store = workdir / "device-keys"
    key_store.write_text("".join(f"{d}:{k}\n" for d, k in (keys or {}).items()))
    key_store.chmod(0o600)
    settings = load_settings(GatewaySettings, {}, mqtt_port=broker.port, mqtt_username="boucle-gateway",
                             mqtt_password=broker.passwords["boucle-gateway"], store_url=f"sqlite:///{db}",
                             metrics_port=0, spool_path=str(workdir / "spool.db"), device_keys=str(key_store),
                             registry=str(EXAMPLE_REGISTRY), client_id="fw-test-gateway")
    return Gateway(settings).start(), SQLiteStore(db)


def device_config(device: str, broker: Broker, profile: str, tls: bool = False, ca: str | None = None,
                  **overrides) -> dict:
    """config.json for a board on this broker, with the device's own credentials."""
    port = broker.tls_port if tls else broker.port
    host = "localhost" if tls else "127.0.0.1"  # TLS: a name on the broker's certificate
    if tls and ca is None:
        ca = (broker.certs / "ca.crt").read_text()
    return config.make_config(device, "atelier", "wifi-pw", host, port, device, broker.passwords[device],
                              ca if tls else None, profile, **overrides)


def new_board(interpreter: Interpreter, folder: Path, cfg: dict, **kw) -> VirtualBoard:
    """A provisioned board (flash written), its world starting a day in the past by default:
    the gateway refuses readings from the future, and virtual time runs ahead of real time."""
    kw.setdefault("world_ms", int((time.time() - 86400) * 1000))
    board = VirtualBoard(interpreter, folder, cfg, **kw)
    board.provision()
    return board
