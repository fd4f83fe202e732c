"""Per-device MQTT credentials: password, Mosquitto password-file entry and ACL block.

The password file uses mosquitto_passwd's PBKDF2-SHA512 format
`user:$7$<iterations>$<base64 salt>$<base64 hash>` (12-byte salt, 64-byte hash), which
Mosquitto 2 reads natively. All functions here are pure text transforms: the caller
decides when the new text reaches the disk (workshop.transaction).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

# mosquitto_passwd's default. Device passwords are 192 random bits, so the KDF cost
# protects nothing a brute force could reach; a low count keeps broker CONNECTs cheap.
ITERATIONS = 101
SALT_BYTES = 12


def generate_password() -> str:
    """A new random device password (192 bits, URL-safe, no ':' so it fits any file)."""
    return secrets.token_urlsafe(24)


def hash_password(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """The `$7$...` hash that mosquitto_passwd would write for this password."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, encoded: str) -> bool:
    """Whether a password matches a `$7$` hash (as Mosquitto checks it)."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[1] != "7":
        raise ValueError("not a mosquitto PBKDF2-SHA512 ($7$) hash")
    iterations, salt, digest = int(parts[2]), base64.b64decode(parts[3]), base64.b64decode(parts[4])
    candidate = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return hmac.compare_digest(candidate, digest)


def password_users(text: str) -> dict[str, str]:
    """username → hash of every entry of a password file."""
    users = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#") and ":" in line:
            user, _, hashed = line.partition(":")
            users[user] = hashed
    return users


def with_password(text: str, username: str, hashed: str) -> str:
    """Password-file text with `username`'s entry set to `hashed` (replaced or appended)."""
    if ":" in username or not username:
        raise ValueError(f"invalid MQTT username {username!r}")
    lines = [line for line in text.splitlines() if line.partition(":")[0] != username]
    lines.append(f"{username}:{hashed}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class DeviceGrants:
    """What a device's MQTT user may do, as MQTT topic filters (docs/protocol.md, "Topics")."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def device_grants(device_id: str, prefix: str) -> DeviceGrants:
    """The one rule for every broker: a device writes only under its own id and reads only
    its own `cmd` topic. Mosquitto's ACL (acl_block) and the NATS authorization
    (workshop.nats_authorization) are both written from it."""
    return DeviceGrants(publish=(f"{prefix}/{device_id}/#",), subscribe=(f"{prefix}/{device_id}/cmd",))


def acl_block(username: str, prefix: str) -> str:
    """Mosquitto ACL lines granting a device its device_grants."""
    grants = device_grants(username, prefix)
    return "".join([f"user {username}\n",
                    *(f"topic write {topic}\n" for topic in grants.publish),
                    *(f"topic read {topic}\n" for topic in grants.subscribe)])


_USER_LINE = re.compile(r"^\s*user\s+(\S+)\s*$")
_SECTION_LINE = re.compile(r"^\s*(user|pattern)\s")


def with_acl(text: str, username: str, prefix: str) -> str:
    """ACL-file text with `username`'s block replaced by (or added as) the device block.

    Mosquitto applies the `topic` lines that follow a `user` line to that user, up to
    the next `user` or `pattern` line; the block is appended at the end so it cannot
    capture lines meant for someone else.
    """
    out: list[str] = []
    skipping = False
    for line in text.splitlines():
        match = _USER_LINE.match(line)
        if match:
            skipping = match.group(1) == username
        elif _SECTION_LINE.match(line):
            skipping = False
        if not skipping:
            out.append(line)
    while out and not out[-1].strip():
        out.pop()
    head = "\n".join(out) + "\n\n" if out else ""
    return head + acl_block(username, prefix)
