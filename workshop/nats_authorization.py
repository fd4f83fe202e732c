"""Per-device users of the clustered broker (NATS): the authorization include file.

deploy/nats/nats.conf includes deploy/nats/authorization.conf, which holds the service
accounts and, between two marker lines, one line per device that `boucle flash` writes:
its user (the device id), a bcrypt hash of its password, MQTT-only connections, and the
permissions of `credentials.device_grants` turned into NATS subjects. Pure text
transforms, like workshop.credentials: the caller decides when the text reaches the disk.

Facts from nats-server (2.9 and 2.10, server/mqtt.go) this relies on:
- an MQTT topic is a subject with '/' turned into '.'; '+' is '*' and '#' is '>';
- a QoS 1 subscription is delivered by a JetStream consumer on `$MQTT.sub.<nuid>`, which
  the MQTT client itself subscribes to: without `$MQTT.sub.>` in its subscribe
  permissions its SUBACK fails. An MQTT SUBSCRIBE to `$MQTT/sub/...` is always refused,
  and device users may not use the NATS protocol (where `$MQTT.sub.>` would let them
  read others' deliveries), so that grant reaches no one else's messages;
- sessions, retained messages and the stored QoS 1 messages are written by the server's
  internal clients: they need no permission of the user.
"""

from __future__ import annotations

import json
import re

import bcrypt

from .credentials import device_grants

# Each CONNECT runs bcrypt once. Device passwords are 192 random bits (generate_password),
# so the cost protects nothing a brute force could reach: bcrypt's minimum keeps a whole
# fleet's reconnection after an outage cheap for the broker.
BCRYPT_COST = 4
MQTT_DELIVERIES = "$MQTT.sub.>"
DEVICES_BEGIN = "# BEGIN devices"
DEVICES_END = "# END devices"
_DEVICE_LINE = re.compile(r'^\s*\{user: "([^"]+)",')


def hash_password(password: str) -> str:
    """The bcrypt hash nats-server checks a password against (`$2b$04$...`)."""
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(BCRYPT_COST)).decode()


def check_password(password: str, hashed: str) -> bool:
    """Whether a password matches a bcrypt hash (as nats-server checks it)."""
    return bcrypt.checkpw(password.encode("utf-8"), hashed.encode())


def nats_filter(topic_filter: str) -> str:
    """The NATS subject filter of an MQTT topic filter whose levels hold neither '.' nor
    ' ' (NATS escapes or refuses those): 'a/+/b/#' -> 'a.*.b.>'."""
    if "." in topic_filter or " " in topic_filter:
        raise ValueError(f"topic filter {topic_filter!r}: '.' and ' ' have no plain NATS subject")
    return ".".join({"+": "*", "#": ">"}.get(level, level) for level in topic_filter.split("/"))


def device_entry(device_id: str, hashed: str, prefix: str) -> str:
    """One line of the users list: the device's user, MQTT only, with its device_grants."""
    grants = device_grants(device_id, prefix)
    permissions = {"publish": {"allow": [nats_filter(t) for t in grants.publish]},
                   "subscribe": {"allow": [*(nats_filter(t) for t in grants.subscribe), MQTT_DELIVERIES]}}
    # JSON strings are NATS config strings; quoted, a '$2b$...' hash is not a variable.
    return (f"{{user: {json.dumps(device_id)}, password: {json.dumps(hashed)}, "
            f'allowed_connection_types: ["MQTT"], permissions: {json.dumps(permissions)}}}')


def device_users(text: str) -> dict[str, str]:
    """device id -> its line, for every device between the markers."""
    users = {}
    for line in _devices_section(text.splitlines())[1]:
        match = _DEVICE_LINE.match(line)
        if match:
            users[match.group(1)] = line.strip()
    return users


def with_device(text: str, device_id: str, hashed: str, prefix: str) -> str:
    """Authorization text with `device_id`'s line replaced by (or added as) a new entry."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", device_id):
        raise ValueError(f"invalid device id {device_id!r} for a NATS user")
    lines = text.splitlines()
    head, devices, tail = _devices_section(lines)
    indent = re.match(r"\s*", lines[len(head) - 1]).group(0)
    kept = [line for line in devices if (m := _DEVICE_LINE.match(line)) is None or m.group(1) != device_id]
    return "\n".join([*head, *kept, indent + device_entry(device_id, hashed, prefix), *tail]) + "\n"


def _devices_section(lines: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(lines up to the BEGIN marker, the device lines, the END marker and after)."""
    begin = [i for i, line in enumerate(lines) if line.strip() == DEVICES_BEGIN]
    end = [i for i, line in enumerate(lines) if line.strip() == DEVICES_END]
    if len(begin) != 1 or len(end) != 1 or end[0] < begin[0]:
        raise ValueError(f"the NATS authorization file needs one '{DEVICES_BEGIN}' line and one "
                         f"'{DEVICES_END}' line after it, inside its users list (see deploy/nats/authorization.conf)")
    return lines[:begin[0] + 1], lines[begin[0] + 1:end[0]], lines[end[0]:]
