"""Input stage on a NATS cluster: a JetStream durable pull consumer shared by the gateways.

Devices speak MQTT 3.1.1 to any node of the cluster (NATS's MQTT gateway). A QoS 1
PUBLISH is acknowledged to the device only once the node stored it in the `$MQTT_msgs`
stream (subjects `$MQTT.msgs.<subject>`, replicated on up to 3 nodes, interest
retention), so that stream is the durable point of the cluster path. The gateways read it
through one durable pull consumer (its name: BOUCLE_SHARE_GROUP, default boucle-gateway)
filtered on the topic prefix: a work queue, each message handed to one gateway at a time,
redelivered when not acked within BOUCLE_NATS_ACK_WAIT_S. A gateway acks a message only after its
spool committed it, as on the MQTT input; interest retention keeps a message in the stream
until the consumer acked it.

QoS 0 messages (health) are not stored by NATS: they reach the gateways as plain NATS
messages on the topic's subject, through a queue subscription (one gateway of the group
gets each), at most once, as over MQTT. One arriving while the inbox is full is dropped
rather than holding up the event loop that also pulls and acks the stream; the next
health message of that device replaces it anyway.

nats-py is asyncio: its client and the pull loop run on an event loop of their own
thread; the spooler's acks are handed to that loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable, Sequence

import nats
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from boucle.mqtt import BrokerUnavailable
from boucle.settings import GatewaySettings
from gateway.input import CHANNELS, Inbox, Message, split_topic

log = logging.getLogger("boucle.gateway")

STREAM = "$MQTT_msgs"
"""The stream NATS's MQTT gateway stores every QoS 1 message in before its PUBACK."""
SUBJECT_PREFIX = "$MQTT.msgs."
DEFAULT_CONSUMER = "boucle-gateway"
MAX_ACK_PENDING = 20_000
"""Messages delivered and not yet acked, across all the gateways of the consumer."""


def describe(exc: BaseException) -> str:
    """An exception as a log line says it (nats-py raises some with an empty message)."""
    return str(exc) or type(exc).__name__


def nats_subject(topic: str) -> str:
    """The NATS subject of an MQTT topic whose levels are neither empty nor hold '.' or ' '
    (the topic prefix; NATS refuses '.' and ' ' in MQTT topics)."""
    return topic.replace("/", ".")


def mqtt_topic(subject: str) -> str:
    """The MQTT topic a `$MQTT_msgs` subject was stored under: NATS turns each '/' into '.'
    and writes an empty level as '/'."""
    levels = subject.removeprefix(SUBJECT_PREFIX).split(".")
    return "/".join("" if level == "/" else level for level in levels)


def consumer_config(settings: GatewaySettings) -> ConsumerConfig:
    """The durable consumer every gateway of the group binds to (the same for all, so
    whichever creates it first, the others find it as they would make it)."""
    name = settings.share_group or DEFAULT_CONSUMER
    return ConsumerConfig(
        durable_name=name, deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.nats_ack_wait_s, max_deliver=-1, max_ack_pending=MAX_ACK_PENDING,
        filter_subject=f"{SUBJECT_PREFIX}{nats_subject(settings.topic_prefix)}.>")


def stored_at(msg, default: float) -> float:
    """When the cluster stored the message (its stream timestamp, in the ack subject), as
    the time it was received. Not the fetch time: a fetch hands over a whole batch at one
    instant, and two dead letters of one device and error received at the same instant
    are one point in InfluxDB (same series, same time) — one of them was lost so. And a
    message redelivered to another gateway keeps its time, so it is the same dead letter
    there too."""
    try:
        return msg.metadata.timestamp.timestamp()
    except Exception:  # noqa: BLE001 - not a JetStream reply subject: the fetch time
        return default


class JetStreamInput:
    """Messages of a NATS cluster's `$MQTT_msgs` stream, through a shared durable pull consumer."""

    def __init__(self, settings: GatewaySettings, batch: int | None = None):
        self.settings = settings
        self.servers = [url.strip() for url in settings.nats_servers.split(",") if url.strip()]
        self.batch = batch or max(100, settings.batch_size)
        self.consumer = settings.share_group or DEFAULT_CONSUMER
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="gateway-jetstream", daemon=True)
        self._nc: nats.NATS | None = None
        self._closing = False
        self._pulling: asyncio.Future | None = None

    # --- the seam (called from the gateway's threads) -----------------------------------

    def start(self, inbox: Inbox, on_session: Callable[[bool], None]) -> None:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._open(inbox, on_session), self._loop)
        try:
            future.result(timeout=60)
        except BrokerUnavailable:
            self._stop_loop()
            raise
        except Exception as exc:  # noqa: BLE001 - any failure to join: one clear error
            self._stop_loop()
            raise BrokerUnavailable(f"NATS cluster {', '.join(self.servers)}: {describe(exc)}. "
                                    "Check BOUCLE_NATS_SERVERS and that the cluster runs with JetStream "
                                    "and MQTT on") from None

    def ack(self, messages: Sequence[Message]) -> None:
        replies = [m.handle for m in messages if m.qos > 0]  # QoS 0: nothing to ack
        if replies:
            self._loop.call_soon_threadsafe(self._send_acks, replies)

    def connected(self) -> bool:
        return bool(self._nc and self._nc.is_connected)

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._closing = True
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=30)
        self._stop_loop()

    # --- on the event loop --------------------------------------------------------------

    async def _open(self, inbox: Inbox, on_session: Callable[[bool], None]) -> None:
        s = self.settings
        options: dict = {"servers": self.servers, "max_reconnect_attempts": -1, "reconnect_time_wait": 1,
                         "connect_timeout": 5, "name": s.client_id,
                         "disconnected_cb": self._disconnected, "reconnected_cb": self._reconnected,
                         "error_cb": self._error}
        if s.mqtt_username:
            options.update(user=s.mqtt_username, password=s.mqtt_password or None)
        if s.mqtt_tls_ca:
            options["tls"] = ssl.create_default_context(cafile=s.mqtt_tls_ca)
        try:
            self._nc = await nats.connect(**options)
        except Exception as exc:  # noqa: BLE001 - nats-py raises several kinds for "cannot connect"
            raise BrokerUnavailable(f"NATS cluster {', '.join(self.servers)}: cannot connect ({describe(exc)}). "
                                    "Check that it runs and BOUCLE_NATS_SERVERS") from None
        js = self._nc.jetstream(timeout=10)
        await self._wait_stream(js)
        try:
            await js.consumer_info(STREAM, self.consumer)
            existed = True
        except NotFoundError:
            await js.add_consumer(STREAM, consumer_config(s))
            existed = False
        on_session(existed)
        subscription = await js.pull_subscribe_bind(durable=self.consumer, stream=STREAM)
        log.info("consuming %s through durable consumer %s on %s (existed: %s)", STREAM, self.consumer,
                 self._nc.connected_url.netloc if self._nc.connected_url else "?", existed)
        self._pulling = asyncio.ensure_future(self._pull(subscription, inbox))
        await self._listen_qos0(inbox)

    async def _listen_qos0(self, inbox: Inbox) -> None:
        """Subscribe to the channels devices publish at QoS 0 (health), in the group's queue."""
        prefix = self.settings.topic_prefix
        full = 0

        async def on_message(msg) -> None:
            nonlocal full
            topic = mqtt_topic(msg.subject)
            if split_topic(prefix, topic) is None:
                return
            if inbox.room < 1:
                full += 1
                if full == 1 or full % 1000 == 0:
                    log.warning("inbox full: %d QoS 0 messages (health) dropped so far, as a broker drops them for "
                                "a slow subscriber", full)
                return
            inbox.put(Message(topic, msg.data, None, 0, False, time.time()))

        for channel in (c for c, qos in CHANNELS.items() if qos == 0):
            await self._nc.subscribe(f"{nats_subject(prefix)}.*.{channel}", queue=self.consumer, cb=on_message)

    async def _wait_stream(self, js) -> None:
        """NATS creates `$MQTT_msgs` when an account's first MQTT client connects: until
        then there is nothing to consume, and nothing was stored either."""
        deadline = time.monotonic() + 30
        while True:
            try:
                await js.stream_info(STREAM)
                return
            except NotFoundError:
                if time.monotonic() > deadline:
                    raise BrokerUnavailable(
                        f"NATS cluster {', '.join(self.servers)} has no {STREAM} stream: its MQTT gateway is off, "
                        "or no MQTT client connected yet (connect one, or enable mqtt {} in the server config)") from None
                await self._touch_mqtt()
                await asyncio.sleep(0.5)

    async def _touch_mqtt(self) -> None:
        """One clean MQTT connection to the cluster's MQTT listener (BOUCLE_MQTT_HOST/PORT),
        which makes the node create the account's MQTT streams."""
        from boucle.mqtt import close_session, open_session

        def touch() -> None:
            try:
                close_session(open_session(self.settings, f"{self.settings.client_id}-bootstrap", persistent=False,
                                           timeout=5))
            except BrokerUnavailable as exc:
                log.warning("could not reach the cluster's MQTT listener to create its streams: %s", exc)

        await asyncio.get_running_loop().run_in_executor(None, touch)

    async def _pull(self, subscription, inbox: Inbox) -> None:
        prefix = self.settings.topic_prefix
        failures = 0
        while not self._closing:
            room = inbox.room
            if room < 1:
                await asyncio.sleep(0.02)  # the spooler is behind: leave the rest with the stream
                continue
            try:
                fetched = await subscription.fetch(min(self.batch, room), timeout=1)
            except (TimeoutError, NatsTimeout):
                continue  # nothing waiting (nats-py raises its own or the builtin one)
            except Exception as exc:  # noqa: BLE001 - leader elections, reconnections: retried
                if not self._closing:
                    failures += 1
                    if failures == 1 or failures % 30 == 0:
                        log.warning("JetStream fetch failed (%s); retrying", describe(exc))
                    await asyncio.sleep(min(2.0, 0.1 * failures))
                continue
            if failures:
                log.info("JetStream fetch works again after %d failures", failures)
                failures = 0
            now = time.time()
            foreign = []
            for msg in fetched:
                topic = mqtt_topic(msg.subject)
                if split_topic(prefix, topic) is None:
                    foreign.append(msg.reply)  # cmd, cmd/ack...: not the gateway's, as outside its MQTT subscription
                    continue
                inbox.put(Message(topic, msg.data, msg.reply, 1, False, stored_at(msg, now)))
            if foreign:
                self._send_acks(foreign)

    def _send_acks(self, replies: list[str]) -> None:
        nc = self._nc
        if nc is None or nc.is_closed:
            return  # not acked: redelivered after the ack wait, dropped as repeats
        asyncio.ensure_future(self._acks(nc, replies))

    @staticmethod
    async def _acks(nc, replies: list[str]) -> None:
        try:
            for reply in replies:
                await nc.publish(reply, b"+ACK")
        except Exception as exc:  # noqa: BLE001 - an ack lost is a redelivery, dropped as a repeat
            log.warning("JetStream acks not sent (%s): those messages come again and are dropped as repeats", exc)

    async def _close(self) -> None:
        if self._pulling is not None:
            await asyncio.wait([self._pulling], timeout=5)
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(Exception):  # an ack not sent is a redelivery, dropped as a repeat
                await self._nc.flush(timeout=5)  # the acks already handed to the client go out first
            await self._nc.close()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _disconnected(self) -> None:
        if not self._closing:
            log.warning("NATS connection lost; reconnecting to another node of the cluster")

    async def _reconnected(self) -> None:
        log.info("NATS reconnected to %s", self._nc.connected_url.netloc if self._nc and self._nc.connected_url else "?")

    async def _error(self, exc: Exception) -> None:
        if not self._closing:
            log.warning("NATS client error: %s", describe(exc))
