"""Verify a new device: its birth message and first telemetry reach the broker.

When they do not come in time, gather evidence (the device's Wi-Fi state over the
serial port, whether the broker takes the device's credentials from the bench) and
name the likely cause: no Wi-Fi association, broker refused the credentials, broker
unreachable.
"""

from __future__ import annotations

import json
import queue
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Self

import paho.mqtt.client as mqtt


@dataclass(frozen=True)
class BrokerAccess:
    """How to reach the broker: address, account and TLS CA (None: plain MQTT)."""

    host: str
    port: int
    username: str = ""
    password: str = field(default="", repr=False)
    ca_file: str | None = None
    ca_pem: str | None = field(default=None, repr=False)  # CA as text (from a device config)

    def describe(self) -> str:
        return f"{self.host}:{self.port}" + (" (TLS)" if self.ca_file or self.ca_pem else "")


def _client(access: BrokerAccess, client_id: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv311, clean_session=True)
    if access.username:
        client.username_pw_set(access.username, access.password)
    if access.ca_file:
        client.tls_set(ca_certs=access.ca_file, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    elif access.ca_pem:
        client.tls_set_context(ssl.create_default_context(cadata=access.ca_pem))
    return client


@dataclass
class Sighting:
    """What the watcher saw of the device."""

    birth: dict[str, Any] | None = None
    telemetry: dict[str, Any] | None = None

    @property
    def complete(self) -> bool:
        return self.birth is not None and self.telemetry is not None


class DeviceWatch:
    """Subscribe to a device's status and telemetry before it boots, then wait for both.

    Retained status messages are ignored: they may be left from an earlier life of
    the same id, while a device booting now publishes its birth live.
    """

    def __init__(self, access: BrokerAccess, prefix: str, device_id: str):
        self.access, self.prefix, self.device_id = access, prefix, device_id
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._client = _client(access, f"boucle-workshop-{uuid.uuid4().hex[:8]}")
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *a: self._subscribed.set()
        self._subscribed = threading.Event()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._events.put(("refused", str(reason)))
            return
        client.subscribe([(f"{self.prefix}/{self.device_id}/status", 1),
                          (f"{self.prefix}/{self.device_id}/telemetry", 1)])

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.retain:
            return
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        leaf = msg.topic.rsplit("/", 1)[-1]
        self._events.put((leaf, body))

    def __enter__(self) -> Self:
        from boucle.cli import UserError

        try:
            self._client.connect(self.access.host, self.access.port, keepalive=30)
        except OSError as exc:
            raise UserError(f"cannot watch the device: broker {self.access.describe()} unreachable from "
                            f"this machine ({exc.strerror or exc}); start it or fix --mqtt-host/--mqtt-port") from None
        self._client.loop_start()
        # The device must not boot before the subscription is in place: its birth would
        # then only be delivered as a retained message, which wait() ignores.
        deadline = time.monotonic() + 10
        while not self._subscribed.wait(0.1):
            if not self._events.empty() or time.monotonic() > deadline:
                self.__exit__()
                kind, body = self._events.get() if not self._events.empty() else ("timeout", "")
                raise UserError(f"cannot watch the device: the broker {self.access.describe()} "
                                + (f"refused the workshop's account ({body}); set BOUCLE_MQTT_USERNAME/"
                                   f"BOUCLE_MQTT_PASSWORD to an account that may read {self.prefix}/#"
                                   if kind == "refused" else "did not confirm the subscription"))
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def wait(self, timeout: float) -> Sighting:
        """Wait until both the birth message and a telemetry batch came, or the timeout."""
        from boucle.cli import UserError

        seen = Sighting()
        deadline = time.monotonic() + timeout
        while not seen.complete:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                kind, body = self._events.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if kind == "refused":
                raise UserError(f"the broker refused the workshop's own account ({body}); set "
                                "BOUCLE_MQTT_USERNAME/BOUCLE_MQTT_PASSWORD to an account that may read "
                                f"{self.prefix}/#")
            if kind == "status" and isinstance(body, dict) and body.get("online") is True:
                seen.birth = body
            elif kind == "telemetry" and isinstance(body, dict) and body.get("device") == self.device_id:
                seen.telemetry = body
        return seen


def probe_credentials(access: BrokerAccess, timeout: float = 5.0) -> str:
    """Try the device's account from the bench: 'ok', 'refused' or 'unreachable'."""
    result: queue.Queue[str] = queue.Queue()
    client = _client(access, f"boucle-probe-{uuid.uuid4().hex[:8]}")
    client.on_connect = lambda c, u, f, reason, p: result.put("refused" if reason.is_failure else "ok")
    try:
        client.connect(access.host, access.port, keepalive=10)
    except (OSError, ssl.SSLError):
        return "unreachable"
    client.loop_start()
    try:
        return result.get(timeout=timeout)
    except queue.Empty:
        return "unreachable"
    finally:
        client.disconnect()
        client.loop_stop()


_WIFI_TROUBLE = {
    "STAT_NO_AP_FOUND": "the access point was not found (check the SSID; the ESP32 sees 2.4 GHz networks only; is it in range?)",
    "STAT_WRONG_PASSWORD": "the Wi-Fi password was refused (check --wifi-ssid and the password you gave)",
    "STAT_ASSOC_FAIL": "the access point refused the association (MAC filtering, too many clients?)",
    "STAT_HANDSHAKE_TIMEOUT": "the Wi-Fi handshake timed out (wrong password or weak signal)",
    "STAT_BEACON_TIMEOUT": "the access point went silent (weak signal?)",
    "STAT_CONNECTING": "it is still trying to associate (weak signal, or the access point is slow)",
    "STAT_IDLE": "Wi-Fi was never started (the app did not run: check the device's REPL for a config error)",
}


def diagnose(seen: Sighting, wifi_status: str | None, probe: str, device_broker: str) -> str:
    """The likely cause when the device did not report, from the evidence gathered."""
    if seen.complete:
        return "ok"
    if seen.birth is not None:
        return ("the device connected to the broker (birth message seen) but sent no telemetry: check the "
                "sensor wiring against the profile, or wait one interval longer (--verify-timeout)")
    if wifi_status in _WIFI_TROUBLE:
        return f"no Wi-Fi association: {_WIFI_TROUBLE[wifi_status]}"
    if probe == "refused":
        return ("the broker refused the device's credentials: it has not read the new password file/ACL yet; "
                "reload it (e.g. `systemctl reload mosquitto`, or pass --reload-broker 'CMD') and check that "
                "its password_file and acl_file are the files given to boucle flash")
    if probe == "unreachable":
        return (f"broker unreachable: nothing answers MQTT at {device_broker} from this machine either; "
                "start the broker or fix --broker-host/--broker-port")
    associated = "the device is on Wi-Fi" if wifi_status == "STAT_GOT_IP" else "the device's Wi-Fi state is unknown"
    return (f"broker unreachable from the device: {associated} and the broker takes its credentials from this "
            f"machine, so the device cannot reach {device_broker} (a host name it cannot resolve, a firewall, "
            "a TLS CA that does not match the broker's certificate, or a clock too far off for TLS)")
