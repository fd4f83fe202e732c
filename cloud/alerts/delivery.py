"""Delivering alert changes: a signed webhook and an MQTT topic, retried with back-off.

Webhook: `POST` of the alert as JSON, with `X-Boucle-Timestamp` (Unix seconds) and
`X-Boucle-Signature: sha256=<hex>`, the HMAC-SHA256 under the shared secret of
`<timestamp>.<body>`; any answer but 2xx is a failure. MQTT: the same JSON at QoS 1 on
`<prefix>/<territory>`, not retained (a stream of changes; the current state is the
API's `GET /v1/alerts`). A failed delivery is tried again after `retry_s`, doubling up to
an hour, `max_attempts` times in all. The secret is never logged, nor the URL's userinfo.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from boucle.settings import ApiSettings, MqttSettings
from cloud.book import Book

log = logging.getLogger("boucle.alerts")
MAX_BACKOFF_S = 3600.0
SIGNATURE_HEADER = "X-Boucle-Signature"
TIMESTAMP_HEADER = "X-Boucle-Timestamp"


class DeliveryFailed(Exception):
    """A delivery attempt that did not get through (the message says why, without secrets)."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Boucle-Signature value of a body sent at `timestamp`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def backoff_s(attempts: int, retry_s: float) -> float:
    """Wait before the next try after `attempts` failed ones: retry_s, doubling, capped at an hour."""
    return min(MAX_BACKOFF_S, retry_s * 2 ** max(0, attempts - 1))


@dataclass
class Webhook:
    url: str
    secret: str
    timeout_s: float = 10.0

    def __repr__(self) -> str:  # never the secret
        return f"Webhook({_where(self.url)})"

    def send(self, body: str, _territory: str) -> None:
        data = body.encode()
        stamp = str(int(time.time()))
        request = urllib.request.Request(self.url, data=data, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "boucle-alerts/1",
            TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: signature(self.secret, stamp, data)})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                answer.read(65536)
        except urllib.error.HTTPError as exc:
            raise DeliveryFailed(f"webhook {_where(self.url)} answered {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryFailed(f"webhook {_where(self.url)} unreachable ({reason})") from None


class MqttTopic:
    """Publishes alert changes on `<prefix>/<territory>` at QoS 1 (a session opened on first use)."""

    def __init__(self, settings: MqttSettings, prefix: str, client_id: str, timeout_s: float = 10.0):
        self.settings, self.prefix, self.client_id, self.timeout_s = settings, prefix.rstrip("/"), client_id, timeout_s
        self.session = None

    def send(self, body: str, territory: str) -> None:
        from boucle.mqtt import BrokerUnavailable, open_session

        if self.session is None:
            try:
                self.session = open_session(self.settings, self.client_id, persistent=False, timeout=self.timeout_s)
            except BrokerUnavailable as exc:
                raise DeliveryFailed(str(exc)) from None
        info = self.session.client.publish(f"{self.prefix}/{territory}", body.encode(), qos=1, retain=False)
        try:
            info.wait_for_publish(self.timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise DeliveryFailed(f"MQTT publish failed ({exc})") from None
        if not info.is_published():
            raise DeliveryFailed(f"MQTT broker {self.settings.mqtt_host}:{self.settings.mqtt_port}: no PUBACK "
                                 f"within {self.timeout_s:g} s")

    def close(self) -> None:
        if self.session is not None:
            from boucle.mqtt import close_session

            close_session(self.session)
            self.session = None



def channels_of(settings: ApiSettings) -> dict[str, object]:
    """The delivery channels the settings configure, by name ("webhook", "mqtt")."""
    out: dict[str, object] = {}
    if settings.alerts_webhook_url:
        out["webhook"] = Webhook(settings.alerts_webhook_url, settings.alerts_webhook_secret)
    if settings.alerts_mqtt_host:
        mqtt = MqttSettings(mqtt_host=settings.alerts_mqtt_host, mqtt_port=settings.alerts_mqtt_port,
                            mqtt_username=settings.alerts_mqtt_username, mqtt_password=settings.alerts_mqtt_password,
                            mqtt_tls_ca=settings.alerts_mqtt_tls_ca)
        out["mqtt"] = MqttTopic(mqtt, settings.alerts_topic_prefix, f"boucle-api-alerts-{settings.port}")
    return out


def deliver_due(book: Book, channels: dict[str, object], now: float, retry_s: float, max_attempts: int) -> int:
    """Try every due delivery once; returns how many got through."""
    sent = 0
    for d in book.due(now):
        channel = channels.get(d.channel)
        if channel is None:  # a channel no longer configured: give up on it
            book.failed(d.id, f"channel {d.channel} is not configured", None)
            continue
        try:
            channel.send(d.body, json.loads(d.body)["territory"])  # type: ignore[attr-defined]
        except DeliveryFailed as exc:
            attempts = d.attempts + 1
            retry = now + backoff_s(attempts, retry_s) if attempts < max_attempts else None
            book.failed(d.id, str(exc), retry)
            log.warning("alert %s: %s delivery failed (attempt %d/%d%s): %s", d.alert, d.channel, attempts,
                        max_attempts, "" if retry else ", giving up", exc)
            continue
        book.delivered(d.id, now)
        sent += 1
    return sent


def _where(url: str) -> str:
    """A URL without its userinfo, query and path (what logs may show)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
