"""Parse stage: raw MQTT telemetry bytes → validated readings, or a rejection.

Pure: no I/O. Two paths with one meaning:
- the fast path decodes and checks a payload in one pass of msgspec's C decoder, against
  typed structs built from the JSON Schema's bounds, straight into row tuples (about a
  tenth of the cost of json.loads plus Python checks);
- the checking path is hand-written Python that mirrors the JSON Schema (tests hold the two
  in agreement on every vector) and says precisely what is wrong. It runs only when the
  fast path refuses a payload, so every rejection and its reason come from one place, and
  a payload the fast path refused wrongly would still be accepted.

Before either, a telemetry payload's signature is checked on its bytes with the device's
key (`checked_signature`, docs/protocol.md "Signatures"); both paths then see the signed
bytes, a v1 payload without its `sig`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Literal

import msgspec
from msgspec.structs import astuple

from boucle.protocol import (
    INTEGER_FIELDS,
    MAX_PAYLOAD_BYTES,
    MAX_READINGS,
    MAX_STATE_BYTES,
    MAX_STATE_DEPTH,
    MEASUREMENT_FIELDS,
    VERSION,
    Reading,
    ReadingRow,
    field_bounds,
    reading_row,
    row_reading,
    split_signature,
)
from boucle.storage import DeviceState

DEVICE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{2,47}$")
_BOUNDS = field_bounds()
_MAX_INT32 = 2**31 - 1
_TOP_KEYS = frozenset(("v", "device", "boot", "readings"))
_READING_KEYS = frozenset(("seq", "ts", *MEASUREMENT_FIELDS))


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a payload was refused: an error code from docs/protocol.md, where, and a message."""

    error: str
    path: str
    message: str


@dataclass(frozen=True, slots=True)
class Signing:
    """What the parse stage checks signatures against: each keyed device's key (the key
    store, boucle.device_keys) and the devices that must sign even without one (registry
    `signed = "required"`)."""

    keys: Mapping[str, bytes]
    required: Collection[str] = frozenset()


def checked_signature(topic_device: str, payload: bytes, signing: Signing) -> bytes | Rejected:
    """The signed bytes of a telemetry payload (the payload itself when unsigned and allowed
    to be; without its signature when the device has no key and may publish unsigned), or
    `bad_signature`. The device is the topic's, which the broker's ACL vouches
    for: the key is looked up before anything of the payload is decoded."""
    key = signing.keys.get(topic_device)
    split = split_signature(payload)
    if key is None:
        if topic_device in signing.required:
            return Rejected("bad_signature", "sig", f"device {topic_device!r} must sign its telemetry (registry "
                                                    "signed = \"required\") but the key store has no key for it: "
                                                    "provision it with boucle flash")
        # Taken as unsigned, as the registry allows for this device: a signature nobody can
        # check proves nothing (a device flashed before its gateway got the key store).
        return payload if split is None else split[0]
    if split is None:
        return Rejected("bad_signature", "sig", f"missing signature: device {topic_device!r} has a key, so its "
                                                "payload must end with ,\"sig\":\"<64 hex digits>\"}")
    signed, mac = split
    if not hmac.compare_digest(hmac_sha256_hex(key, signed), mac):
        return Rejected("bad_signature", "sig", "the signature does not match the payload: altered after signing, "
                                                "or signed with another key than the key store's")
    return signed


@lru_cache(maxsize=65536)
def _keyed_hmac(key: bytes) -> hmac.HMAC:
    """An HMAC-SHA256 keyed once per key: a message then costs a copy of it and one update
    (1.1 µs here, where `hmac.digest`, which redoes the key each time, takes 1.7)."""
    return hmac.new(key, digestmod=hashlib.sha256)


def hmac_sha256_hex(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 of `message` as 64 lower-case hex digits (bytes, as in a signed payload)."""
    mac = _keyed_hmac(key).copy()
    mac.update(message)
    return mac.hexdigest().encode()


class _Reject(Exception):
    def __init__(self, error: str, path: str, message: str) -> None:
        super().__init__(message)
        self.rejected = Rejected(error, path, message)


def _not_finite(token: str) -> float:
    raise _Reject("not_finite", "", f"{token} is not a finite number")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Repeated(dict):
    """A decoded JSON object that had a key twice (`json` keeps the last value silently)."""

    __slots__ = ("key",)


def load_json(payload: bytes, parse_constant: Any = None) -> Any:
    """`json.loads` with every failure as a rejection: `not_json`, `not_finite` (through
    `parse_constant`), `too_deep` for nesting past Python's recursion limit (a
    RecursionError would otherwise escape and end the thread parsing it), or `schema` for
    a key given twice in one object, at the path of that key."""
    repeats = []

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict:
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        seen: set[str] = set()
        obj = _Repeated(pairs)
        obj.key = next(k for k, _ in pairs if k in seen or seen.add(k))
        repeats.append(obj)
        return obj

    try:
        doc = json.loads(payload, parse_constant=parse_constant, object_pairs_hook=unique_keys)
    except _Reject as exc:
        raise _Reject("not_finite", _nan_path(payload), exc.rejected.message) from None
    except RecursionError:
        raise _Reject("too_deep", "", "JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Reject("not_json", "", f"not UTF-8 JSON: {exc}") from None
    if repeats:
        path, key = _repeated_key(doc)
        raise _Reject("schema", path, f"key '{key}' appears twice in one object: JSON object keys must be unique")
    return doc


def _repeated_key(doc: Any) -> tuple[str, str]:
    """Path and name of the first repeated key in document order (iterative: no recursion)."""
    todo: list[tuple[Any, str]] = [(doc, "")]
    while todo:
        value, path = todo.pop()
        if isinstance(value, _Repeated):
            return (f"{path}.{value.key}" if path else value.key), value.key
        if isinstance(value, dict):
            children = [(v, f"{path}.{k}" if path else k) for k, v in value.items()]
        elif isinstance(value, list):
            children = [(v, f"{path}[{i}]") for i, v in enumerate(value)]
        else:
            continue
        todo.extend(reversed(children))
    raise AssertionError("a repeated key was recorded but not found")


def _wire_types() -> msgspec.json.Decoder:
    """A decoder for the payload with the schema's constraints (types, bounds, pattern,
    no unknown fields). A reading's struct fields are seq, ts, then MEASUREMENT_FIELDS in
    order, so `(device, boot) + astuple(reading)` is a ReadingRow."""
    bounded = [("seq", Annotated[int, msgspec.Meta(ge=0, le=_MAX_INT32)]),
               ("ts", Annotated[int, msgspec.Meta(ge=_BOUNDS["ts"][0], le=_BOUNDS["ts"][1])])]
    for name in MEASUREMENT_FIELDS:
        kind = int if name in INTEGER_FIELDS else float
        low, high = _BOUNDS[name]
        bounded.append((name, Annotated[kind, msgspec.Meta(ge=low, le=high)] | None, None))
    wire_reading = msgspec.defstruct("WireReading", bounded, forbid_unknown_fields=True)
    batch = msgspec.defstruct("WireBatch", [
        ("v", Literal[VERSION]),
        ("device", Annotated[str, msgspec.Meta(pattern=DEVICE_ID.pattern)]),
        ("boot", Annotated[int, msgspec.Meta(ge=0, le=_MAX_INT32)]),
        ("readings", Annotated[list[wire_reading], msgspec.Meta(min_length=1, max_length=MAX_READINGS)]),
    ], forbid_unknown_fields=True)
    return msgspec.json.Decoder(batch)


_WIRE = _wire_types()
_MEASUREMENTS = len(MEASUREMENT_FIELDS)


def parse_rows(
    topic_device: str,
    payload: bytes,
    *,
    known_devices: Collection[str] | None,
    now: float,
    max_future_skew_s: float = 300,
    max_bytes: int = MAX_PAYLOAD_BYTES,
    retained: bool = False,
    signing: Signing | None = None,
) -> list[ReadingRow] | Rejected:
    """Validate one telemetry payload published on `{prefix}/{topic_device}/telemetry`;
    its readings as rows, or why it was refused. `retained`: the message is the broker's
    retained copy (the MQTT retain flag as delivered).

    `known_devices=None` accepts any device id (registry checks done elsewhere);
    `signing=None` checks no signature (a signed payload is then refused as `schema`).
    """
    if retained:
        return _retained("telemetry")
    if signing is not None and len(payload) <= max_bytes:
        signed = checked_signature(topic_device, payload, signing)
        if isinstance(signed, Rejected):
            return signed
        payload = signed
    if len(payload) <= max_bytes:
        rows = _fast_rows(topic_device, payload, known_devices, now + max_future_skew_s)
        if rows is not None:
            return rows
    try:
        return [reading_row(r) for r in _parse(topic_device, payload, known_devices, now, max_future_skew_s,
                                               max_bytes)]
    except _Reject as exc:
        return exc.rejected


def parse_telemetry(topic_device: str, payload: bytes, **limits: Any) -> list[Reading] | Rejected:
    """`parse_rows` with its readings as Reading objects."""
    rows = parse_rows(topic_device, payload, **limits)
    return rows if isinstance(rows, Rejected) else [row_reading(r) for r in rows]


def _fast_rows(topic_device: str, payload: bytes, known_devices: Collection[str] | None,
               latest_ts: float) -> list[ReadingRow] | None:
    """The payload's rows when it is valid, else None (the checking path then says why)."""
    try:
        batch = _WIRE.decode(payload)
    except (msgspec.DecodeError, RecursionError):  # ValidationError included
        return None
    device, boot = batch.device, batch.boot
    if device != topic_device or (known_devices is not None and device not in known_devices):
        return None
    rows = []
    last_seq = -1
    absent = 0
    for reading in batch.readings:
        row = (device, boot, *astuple(reading))
        # seq order, clock skew, and at least one measurement (only those slots can be None)
        nones = row.count(None)
        if row[2] <= last_seq or row[3] > latest_ts or nones == _MEASUREMENTS:
            return None
        last_seq = row[2]
        absent += nones
        rows.append(row)
    # Two things the structs cannot see: a repeated key (msgspec keeps its last value) and
    # a measurement present but null (decoded as None, like an absent one; the schema
    # refuses null). Each shows as one ':' more than the fields decoded: in a payload that
    # decoded, every ':' separates a key from its value (keys are known names, and the
    # device id's pattern has no ':').
    if payload.count(b":") != 4 + len(rows) * (2 + _MEASUREMENTS) - absent:
        return None
    return rows


def _parse(topic_device, payload, known_devices, now, skew, max_bytes) -> list[Reading]:
    if len(payload) > max_bytes:
        raise _Reject("too_large", "", f"payload is {len(payload)} bytes, the limit is {max_bytes}")
    doc = load_json(payload, parse_constant=_not_finite)
    if not isinstance(doc, dict):
        raise _Reject("schema", "", "payload must be a JSON object")
    for key in ("v", "device", "boot", "readings"):
        if key not in doc:
            raise _Reject("schema", key, f"missing required field '{key}'")
    extra = doc.keys() - _TOP_KEYS
    if extra:
        key = min(extra)
        raise _Reject("schema", key, f"unknown field '{key}'")
    if doc["v"] != VERSION or not _is_int(doc["v"]):
        raise _Reject("schema", "v", f"protocol version {doc['v']!r} is not {VERSION}")
    device = doc["device"]
    if not isinstance(device, str) or not DEVICE_ID.match(device):
        raise _Reject("schema", "device", f"device id {device!r} does not match {DEVICE_ID.pattern}")
    boot = doc["boot"]
    if not _is_int(boot) or not 0 <= boot <= _MAX_INT32:
        raise _Reject("schema", "boot", "boot must be an integer from 0 to 2^31-1")
    items = doc["readings"]
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_READINGS:
        raise _Reject("schema", "readings", f"readings must be a list of 1 to {MAX_READINGS}")
    readings = [_reading(i, item, device, boot) for i, item in enumerate(items)]
    for i in range(1, len(readings)):
        if readings[i].seq <= readings[i - 1].seq:
            raise _Reject("seq_order", f"readings[{i}].seq", "seq must strictly increase within a batch")
    if device != topic_device:
        raise _Reject("topic_mismatch", "device", f"payload device {device!r} published under {topic_device!r}")
    if known_devices is not None and device not in known_devices:
        raise _Reject("unknown_device", "device", f"device {device!r} is not in the registry")
    for i, r in enumerate(readings):
        if r.ts > now + skew:
            raise _Reject(
                "future_timestamp", f"readings[{i}].ts",
                f"ts is {int(r.ts - now)} s ahead of the gateway clock (allowed {int(skew)} s)",
            )
    return readings


def _reading(i: int, item: Any, device: str, boot: int) -> Reading:
    where = f"readings[{i}]"
    if not isinstance(item, dict):
        raise _Reject("schema", where, "a reading must be an object")
    for key in ("seq", "ts"):
        if key not in item:
            raise _Reject("schema", f"{where}.{key}", f"missing required field '{key}'")
    extra = item.keys() - _READING_KEYS
    if extra:
        key = min(extra)
        raise _Reject("schema", f"{where}.{key}", f"unknown field '{key}'")
    if len(item) < 3:
        raise _Reject("schema", where, "a reading needs at least one measurement field")
    values: dict[str, float | int] = {}
    for key, value in item.items():
        path = f"{where}.{key}"
        if key in INTEGER_FIELDS or key in ("seq", "ts"):
            if not _is_int(value):
                raise _Reject("schema", path, f"{key} must be an integer")
        elif not _is_number(value):
            raise _Reject("schema", path, f"{key} must be a number")
        if key == "seq":
            if not 0 <= value <= _MAX_INT32:
                raise _Reject("schema", path, "seq must be from 0 to 2^31-1")
            continue
        low, high = _BOUNDS[key]
        if not low <= value <= high:
            raise _Reject("out_of_bounds", path, f"{key}={value} outside [{low}, {high}]")
        if key != "ts":
            # As the fast path does: a decimal field is a float even when sent as 1 (InfluxDB
            # refuses a field that changes type).
            values[key] = value if key in INTEGER_FIELDS else float(value)
    return Reading(device, boot, item["seq"], item["ts"], values)


def _nan_path(payload: bytes) -> str:
    """Locate the first non-finite number, for the dead-letter reason (slow path only)."""
    try:
        doc = json.loads(payload)
        for i, item in enumerate(doc.get("readings", [])):
            for key, value in item.items():
                if isinstance(value, float) and not math.isfinite(value):
                    return f"readings[{i}].{key}"
    except (ValueError, AttributeError, TypeError, RecursionError):
        pass
    return ""


def _retained(channel: str) -> Rejected:
    return Rejected("retained", "", f"{channel} is never retained (docs/protocol.md): this is the broker's retained "
                                    "copy, sent because the gateway subscribed; clear it by publishing an empty "
                                    "retained message on the topic")


def parse_state(device: str, channel: str, payload: bytes, received: float,
                known_devices: Collection[str] | None, retained: bool = False) -> DeviceState | Rejected:
    """A status or health message: a small, shallow JSON object from a known device. Only
    status is retained: a retained health message is a stale copy."""
    if retained and channel != "status":
        return _retained(channel)
    if len(payload) > MAX_STATE_BYTES:
        return Rejected("too_large", "", f"{channel} payload over {MAX_STATE_BYTES} bytes")
    if known_devices is not None and device not in known_devices:
        return Rejected("unknown_device", "device", f"device {device!r} is not in the registry")
    try:
        doc = load_json(payload, parse_constant=lambda _token: None)
    except _Reject as exc:
        return exc.rejected
    if not isinstance(doc, dict):
        return Rejected("schema", "", f"{channel} payload must be a JSON object")
    if _depth(doc) > MAX_STATE_DEPTH:
        return Rejected("too_deep", "", f"{channel} payload nested over {MAX_STATE_DEPTH} levels")
    return DeviceState(device, channel, doc, received)


def _depth(doc: Any) -> int:
    """Nesting depth of a decoded JSON value (a scalar is 0), without recursion."""
    deepest, todo = 0, [(doc, 1)]
    while todo:
        value, depth = todo.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            deepest = max(deepest, depth)
            todo.extend((child, depth + 1) for child in value)
    return deepest
