"""Benchmark load: telemetry payloads for a generated registry, encoded by the firmware's
own encoder, published with QoS 1 and counted as acknowledged by the broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

from boucle_fw.protocol import encode_batch, encode_reading, topic

from bench.simulator_bench import registry_for
from boucle.mqtt import close_session, open_session
from boucle.registry import load_registry
from boucle.settings import MqttSettings, load_settings

PREFIX = "boucle/v1"


def write_registry(path: Path, n_devices: int) -> dict[str, str]:
    """Write a generated registry of about `n_devices` devices; {device id: kind}."""
    path.write_text(registry_for(n_devices))
    return {d.id: d.kind for d in load_registry(path).devices}


def reading(kind: str, seq: int, ts: int) -> dict:
    """A plausible reading: a rising energy counter, or a bin's weight."""
    if kind == "waste":
        return {"seq": seq, "ts": ts, "weight_g": 20_000 + (seq * 37) % 5000}
    return {"seq": seq, "ts": ts, "energy_wh": 1000 + seq * 10, "power_w": 600.0 + seq % 50}


def payloads(devices: dict[str, str], readings_per_payload: int, messages: int, start_ts: int,
             boot: int = 1) -> Iterator[tuple[str, bytes]]:
    """`messages` (topic, payload) pairs round-robin over `devices`; each device's readings
    are a minute apart from `start_ts` with consecutive sequence numbers."""
    ids = list(devices)
    seqs = dict.fromkeys(ids, 0)
    for i in range(messages):
        device = ids[i % len(ids)]
        seq = seqs[device]
        body = [encode_reading(reading(devices[device], seq + k, start_ts + 60 * (seq + k))) for k in range(readings_per_payload)]
        seqs[device] = seq + readings_per_payload
        yield topic(PREFIX, device, "telemetry"), encode_batch(device, boot, body)


class Publisher:
    """One MQTT connection publishing QoS 1 messages; `wait()` until the broker acked all."""

    def __init__(self, port: int, client_id: str = "boucle-bench-publisher", max_inflight: int = 1000):
        settings = load_settings(MqttSettings, {}, mqtt_port=port)
        self.session = open_session(settings, client_id, persistent=False, max_inflight=max_inflight)
        self._acked = 0
        self._sent = 0
        self._cond = threading.Condition()
        self.session.client.on_publish = self._on_publish

    def _on_publish(self, _client, _userdata, _mid, _reason_code=None, _properties=None) -> None:
        with self._cond:
            self._acked += 1
            self._cond.notify_all()

    def publish(self, topic_: str, payload: bytes) -> None:
        self.session.client.publish(topic_, payload, qos=1)
        self._sent += 1

    def wait(self, timeout: float = 300) -> None:
        """Block until every published message was acknowledged (PUBACK)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._acked < self._sent:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"broker acknowledged {self._acked} of {self._sent} messages")
                self._cond.wait(left)

    def close(self) -> None:
        close_session(self.session)
