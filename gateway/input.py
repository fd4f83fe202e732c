"""Input stage: where messages come from. They go into a bounded queue, un-acked.

The broker redelivers anything not acknowledged, so a message is acked only after the
spooler committed it (see gateway.service). The seam is `Input`: start (feeding an
inbox), ack, connected, close. Two implementations, chosen by BOUCLE_INPUT:
`MqttInput` here (a persistent MQTT session on one broker: Mosquitto, amqtt) and
`gateway.jetstream.JetStreamInput` (a durable pull consumer on a NATS cluster)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

import paho.mqtt.client as mqtt

from boucle.mqtt import Session, close_session, open_session
from boucle.settings import GatewaySettings, SettingsError

log = logging.getLogger("boucle.gateway")

CHANNELS = {"telemetry": 1, "status": 1, "health": 0}


class Message(NamedTuple):
    """A message taken off the broker, not yet acknowledged. (A tuple: one is made per
    message on the input's thread, whose time bounds the gateway's rate.)"""

    topic: str
    payload: bytes
    handle: object
    """What the input that made it needs to ack it: the MQTT packet id, the JetStream reply subject."""
    qos: int
    retain: bool
    """Set when the broker sent its retained copy because of a (re)subscription; a message
    published with retain set reaches established subscriptions with it cleared (MQTT
    3.1.1 §3.3.1.3; MQTT 5 without Retain As Published, which the gateway does not ask for)."""
    received: float


class Input(Protocol):
    """The input stage's seam: what the rest of the gateway knows of the broker."""

    def start(self, inbox: Inbox, on_session: Callable[[bool], None]) -> None:
        """Connect and feed `inbox`; `on_session(present)` after each (re)connection, with
        whether the broker still held the gateway's queue. Raises BrokerUnavailable."""

    def ack(self, messages: Sequence[Message]) -> None:
        """Acknowledge messages committed to the spool (the broker may forget them)."""

    def connected(self) -> bool:
        """Whether the input is connected to its broker now."""

    def close(self) -> None:
        """Disconnect; what was not acked stays with the broker."""


class Inbox:
    """The bounded hand-off from the MQTT thread to the spooler.

    Cheaper than queue.Queue, which takes a lock and notifies a condition per message: here
    a message is a deque append (atomic under the GIL). The MQTT thread blocks only when the
    inbox is full (the broker then holds the rest: back-pressure), the spooler sleeps only
    when it is empty. Events are re-checked after clearing, so a wake-up is never lost; the
    timeouts only bound a wait, they are not needed for correctness.
    """

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._items: deque[Message] = deque()
        self._ready = threading.Event()
        self._room = threading.Event()

    def put(self, message: Message) -> None:
        """Add a message, blocking while the inbox is full."""
        while len(self._items) >= self.maxsize:
            self._room.clear()
            if len(self._items) >= self.maxsize:
                self._room.wait(0.1)
        self._items.append(message)
        if not self._ready.is_set():
            self._ready.set()

    @property
    def room(self) -> int:
        """How many messages fit before `put` blocks."""
        return self.maxsize - len(self._items)

    def take(self, limit: int, timeout: float) -> list[Message]:
        """Up to `limit` messages, oldest first; waits up to `timeout` s for the first one."""
        items = self._items
        if not items:
            self._ready.clear()
            if not items:
                self._ready.wait(timeout)
        batch = []
        while items and len(batch) < limit:
            batch.append(items.popleft())
        if batch and not self._room.is_set():
            self._room.set()
        return batch


def split_topic(prefix: str, topic: str) -> tuple[str, str] | None:
    """`{prefix}/{device}/{channel}` → (device, channel), or None for anything else."""
    if not topic.startswith(prefix + "/"):
        return None
    parts = topic[len(prefix) + 1:].split("/")
    if len(parts) != 2 or parts[1] not in CHANNELS:
        return None
    return parts[0], parts[1]


class MqttInput:
    """A persistent MQTT session on one broker (Mosquitto, amqtt): a subscription, shared
    ($share/GROUP/...) when several gateways split the load, acked by hand."""

    def __init__(self, settings: GatewaySettings):
        self.settings = settings
        self.session: Session | None = None
        self._client: mqtt.Client | None = None

    def start(self, inbox: Inbox, on_session: Callable[[bool], None]) -> None:
        settings = self.settings

        def on_message(_client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
            # put() blocks when the queue is full: the broker then holds the rest (back-pressure).
            inbox.put(Message(msg.topic, msg.payload, msg.mid, msg.qos, msg.retain, time.time()))

        subscribed = threading.Event()

        def on_subscribe(_client, _userdata, _mid, _reason_codes, _properties=None) -> None:
            subscribed.set()

        def on_connect(client: mqtt.Client, session_present: bool) -> None:
            # A persistent session gets its queued messages the moment it connects, before
            # open_session returns: the client that acks them is known from here.
            self._client = client
            client.on_subscribe = on_subscribe
            on_session(session_present)
            share = f"$share/{settings.share_group}/" if settings.share_group else ""
            client.subscribe([(f"{share}{settings.topic_prefix}/+/{channel}", qos) for channel, qos in CHANNELS.items()])

        self.session = open_session(settings, settings.client_id, persistent=True,
                                    session_expiry_s=settings.session_expiry_s, manual_ack=True,
                                    on_message=on_message, on_connect=on_connect, max_inflight=1000)
        # Return once the broker confirmed the subscription: from then on nothing is missed.
        if not subscribed.wait(10):
            log.warning("no SUBACK within 10 s; messages published meanwhile may be missed on a first start")

    def ack(self, messages: Sequence[Message]) -> None:
        client = self._client
        for m in messages:
            if m.qos > 0:
                client.ack(m.handle, m.qos)

    def connected(self) -> bool:
        return bool(self.session and self.session.client.is_connected())

    def close(self) -> None:
        if self.session is not None:
            close_session(self.session)  # unacked messages stay with the broker's session


INPUTS = ("mqtt", "jetstream")


def open_input(settings: GatewaySettings) -> Input:
    """The input stage BOUCLE_INPUT names; SettingsError for another name."""
    if settings.input == "mqtt":
        return MqttInput(settings)
    if settings.input == "jetstream":
        from gateway.jetstream import JetStreamInput  # nats-py is imported only where it is used

        return JetStreamInput(settings)
    raise SettingsError(f"BOUCLE_INPUT={settings.input!r}: use one of {', '.join(INPUTS)}")
