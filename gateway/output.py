"""Output stage: parse a batch of messages and commit it to the store in one go.

Pure of MQTT: it takes messages, returns what to acknowledge. Dedup is the store's
primary key (device, boot, seq), so it holds across restarts and processes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Collection, Sequence

from boucle.protocol import Reading
from boucle.storage import DeadLetter, DeviceState, Store
from gateway.input import Message
from gateway.metrics import GatewayMetrics
from gateway.parse import Rejected, parse_telemetry

MAX_STATE_BYTES = 2048


@dataclass
class BatchResult:
    readings: int = 0
    stored: int = 0
    rejected: dict[str, int] = field(default_factory=dict)


def commit_batch(
    messages: Sequence[Message],
    store: Store,
    known_devices: Collection[str] | None,
    *,
    max_future_skew_s: float,
    max_payload_bytes: int,
    metrics: GatewayMetrics | None = None,
) -> BatchResult:
    """Validate and durably store a batch; every message ends stored or dead-lettered."""
    now = time.time()
    readings: list[Reading] = []
    letters: list[DeadLetter] = []
    states: list[DeviceState] = []
    for msg in messages:
        if metrics:
            metrics.messages.labels(msg.channel).inc()
        if msg.channel == "telemetry":
            result = parse_telemetry(msg.device, msg.payload, known_devices=known_devices, now=now,
                                     max_future_skew_s=max_future_skew_s, max_bytes=max_payload_bytes)
        else:
            result = _state(msg, known_devices)
        if isinstance(result, Rejected):
            letters.append(DeadLetter(msg.received, msg.topic, result.error, result.path, result.message,
                                      msg.payload[:max_payload_bytes]))
        elif isinstance(result, DeviceState):
            states.append(result)
        else:
            readings.extend(result)
    out = BatchResult(readings=len(readings))
    if readings:
        out.stored = store.write_readings(readings, now)
    if letters:
        store.write_dead_letters(letters)
        for letter in letters:
            out.rejected[letter.error] = out.rejected.get(letter.error, 0) + 1
    if states:
        store.write_device_states(states)
    if metrics:
        metrics.readings_received.inc(out.readings)
        metrics.stored.inc(out.stored)
        metrics.duplicates.inc(out.readings - out.stored)
        for reason, n in out.rejected.items():
            metrics.rejected.labels(reason).inc(n)
        if readings:
            metrics.lag.set(max(0.0, now - max(r.ts for r in readings)))
    return out


def _state(msg: Message, known_devices: Collection[str] | None) -> DeviceState | Rejected:
    if msg.channel not in ("status", "health"):
        return Rejected("topic", "", f"unexpected topic {msg.topic!r}")
    if len(msg.payload) > MAX_STATE_BYTES:
        return Rejected("too_large", "", f"{msg.channel} payload over {MAX_STATE_BYTES} bytes")
    if known_devices is not None and msg.device not in known_devices:
        return Rejected("unknown_device", "device", f"device {msg.device!r} is not in the registry")
    try:
        doc = json.loads(msg.payload, parse_constant=lambda c: None)
    except (ValueError, UnicodeDecodeError) as exc:
        return Rejected("not_json", "", f"not UTF-8 JSON: {exc}")
    if not isinstance(doc, dict):
        return Rejected("schema", "", f"{msg.channel} payload must be a JSON object")
    return DeviceState(msg.device, msg.channel, doc, msg.received)
