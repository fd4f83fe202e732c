"""MQTT sessions for the services (gateway, simulator, workshop), on paho-mqtt 2.x.

Every client first asks for MQTT v5 with a persistent session (clean_start=False and a
session expiry); a broker that refuses v5 (amqtt speaks 3.1.1 only) gets the same
persistent session in 3.1.1 form (clean_session=False, fixed client id).
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from boucle.settings import MqttSettings

log = logging.getLogger("boucle.mqtt")


class BrokerUnavailable(Exception):
    """The broker could not be reached or refused us; the message says which and why."""


@dataclass
class Session:
    client: mqtt.Client
    protocol: str  # "5" or "3.1.1"
    session_present: bool


def open_session(
    settings: MqttSettings,
    client_id: str,
    *,
    persistent: bool = True,
    session_expiry_s: int = 7 * 86400,
    manual_ack: bool = False,
    on_message: Callable[[mqtt.Client, object, mqtt.MQTTMessage], None] | None = None,
    on_connect: Callable[[mqtt.Client, bool], None] | None = None,
    will: tuple[str, bytes, int, bool] | None = None,
    timeout: float = 10.0,
    max_inflight: int = 100,
    receive_maximum: int = 1000,
) -> Session:
    """Connect (v5, else 3.1.1), start the network loop, and return the session.

    `on_connect(client, session_present)` runs after every (re)connection, which is
    where subscriptions belong so that they survive a broker restart.
    """
    protocols = {"5": [MQTTProtocolVersion.MQTTv5], "3.1.1": [MQTTProtocolVersion.MQTTv311],
                 "auto": [MQTTProtocolVersion.MQTTv5, MQTTProtocolVersion.MQTTv311]}.get(settings.mqtt_protocol)
    if protocols is None:
        raise BrokerUnavailable(f"BOUCLE_MQTT_PROTOCOL={settings.mqtt_protocol!r}: use auto, 5 or 3.1.1")
    last_error = ""
    for protocol in protocols:
        fallback = protocol == MQTTProtocolVersion.MQTTv5 and len(protocols) > 1
        # A 3.1.1-only broker may refuse a v5 CONNECT or never answer it: don't wait long.
        session, last_error = _try_connect(settings, client_id, protocol, persistent, session_expiry_s,
                                           manual_ack, on_message, on_connect, will,
                                           min(timeout, 3.0) if fallback else timeout, max_inflight,
                                           receive_maximum)
        if session is not None:
            return session
        if last_error.startswith("unreachable"):
            break
    raise BrokerUnavailable(
        f"MQTT broker {settings.mqtt_host}:{settings.mqtt_port}: {last_error}. "
        "Check that it runs (boucle up starts one) and the BOUCLE_MQTT_* settings."
    )


def _try_connect(settings, client_id, protocol, persistent, expiry, manual_ack, on_message,
                 on_connect, will, timeout, max_inflight, receive_maximum):
    v5 = protocol == MQTTProtocolVersion.MQTTv5
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=None if v5 else not persistent,
        protocol=protocol,
        manual_ack=manual_ack,
    )
    client.max_inflight_messages_set(max_inflight)
    client.max_queued_messages_set(0)  # paho's own outgoing queue: unbounded, never drops
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    if settings.mqtt_username:
        client.username_pw_set(settings.mqtt_username, settings.mqtt_password or None)
    if settings.mqtt_tls_ca:
        client.tls_set(ca_certs=settings.mqtt_tls_ca, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    if will is not None:
        client.will_set(*will)
    outcome: dict[str, object] = {}
    first = threading.Event()

    def connected(c, _userdata, flags, reason_code, _properties=None):
        if reason_code.is_failure:
            outcome["error"] = f"connection refused: {reason_code}"
            first.set()
            return
        present = bool(getattr(flags, "session_present", False))
        outcome.setdefault("session_present", present)
        if on_connect is not None:
            on_connect(c, present)
        first.set()

    def disconnected(_c, _userdata, _flags, reason_code, _properties=None):
        if not first.is_set():
            outcome["error"] = f"connection closed before CONNACK ({reason_code})"
            first.set()

    client.on_connect = connected
    client.on_disconnect = disconnected
    if on_message is not None:
        client.on_message = on_message
    props = None
    if v5:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = expiry if persistent else 0
        # How many unacked QoS 1 messages the broker may send us at once: the gateway acks a
        # whole spool commit at a time, so a small window would mean a disk sync per few messages.
        props.ReceiveMaximum = max(20, min(65535, receive_maximum))
    try:
        client.connect(settings.mqtt_host, settings.mqtt_port, keepalive=30,
                       clean_start=not persistent if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                       properties=props)
    except (OSError, ValueError) as exc:
        return None, f"unreachable ({exc})"
    client.loop_start()
    if not first.wait(timeout):
        client.loop_stop()
        client.disconnect()
        return None, f"no answer within {timeout:.0f} s"
    if "error" in outcome:
        client.loop_stop()
        with contextlib.suppress(Exception):  # the socket may already be gone
            client.disconnect()
        return None, str(outcome["error"])
    version = "5" if v5 else "3.1.1"
    log.info("connected to %s:%s as %s (MQTT %s, session present: %s)", settings.mqtt_host,
             settings.mqtt_port, client_id, version, outcome["session_present"])
    return Session(client, version, bool(outcome["session_present"])), ""


def close_session(session: Session) -> None:
    """Disconnect cleanly (the broker keeps a persistent session) and stop the loop."""
    session.client.disconnect()
    session.client.loop_stop()
