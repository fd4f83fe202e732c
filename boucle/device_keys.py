"""The device key store: the secret each device signs its telemetry with (docs/protocol.md,
"Signatures").

One text file, a line per device: `device-id:<64 hex digits>` (32 random bytes), `#`
comments. HMAC keys are symmetric, so the server holds them in clear: the file is kept
like the broker's password file, out of the registry, mode 0600 (created so by `boucle
flash`), and its content is never logged. `boucle flash` adds a device's line in the same
transaction as its registry entry and MQTT password; the gateway reads the file at start
and again whenever it changes.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import stat
from pathlib import Path

from boucle.registry import DEVICE_ID

KEY_BYTES = 32
_LINE = re.compile(r"^(?P<device>[^:\s]+):(?P<key>[0-9a-f]{64})$")
log = logging.getLogger("boucle.device_keys")


class KeyStoreError(ValueError):
    """A key store line that cannot be read: the file, the line number and the fix (never the key)."""


def generate_key() -> str:
    """A new device key, as the 64 hex digits written to the device config and the store."""
    return secrets.token_bytes(KEY_BYTES).hex()


def parse_keys(text: str, path: str | os.PathLike[str] = "device-keys") -> dict[str, bytes]:
    """device id → key of every line; KeyStoreError naming the line of a bad one."""
    keys: dict[str, bytes] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match or not re.match(DEVICE_ID, match["device"]):
            raise KeyStoreError(f"{path}:{number}: not a key line; write 'device-id:<64 lower-case hex digits>' "
                                "(as `boucle flash` does) or remove the line")
        if match["device"] in keys:
            raise KeyStoreError(f"{path}:{number}: device {match['device']!r} has a key already; keep one line")
        keys[match["device"]] = bytes.fromhex(match["key"])
    return keys


def with_key(text: str, device: str, key_hex: str) -> str:
    """Key-store text with `device`'s line set to `key_hex` (replaced or appended)."""
    if not re.match(DEVICE_ID, device) or not re.fullmatch(r"[0-9a-f]{64}", key_hex):
        raise ValueError(f"not a device id and key for the key store: {device!r}")
    lines = [line for line in text.splitlines() if line.partition(":")[0].strip() != device]
    lines.append(f"{device}:{key_hex}")
    return "\n".join(lines) + "\n"


class KeyStoreFile:
    """The key store as the gateway sees it: re-read when the file changes; a missing file
    is an empty store (no device signs yet); a broken edit keeps the last good keys."""

    def __init__(self, path: str | os.PathLike[str] | None):
        self.path = Path(path) if path else None
        self._mtime: int | None = None
        self._keys: dict[str, bytes] = {}
        self.rejected: str | None = None
        self.current()

    def current(self) -> dict[str, bytes]:
        """device id → key."""
        if self.path is None:
            return self._keys
        try:
            info = self.path.stat()
        except OSError:
            if self._mtime is not None:
                log.error("device key store %s is gone; keeping the %d keys read before", self.path, len(self._keys))
                self._mtime = None
            return self._keys
        if info.st_mtime_ns == self._mtime:
            return self._keys
        self._mtime = info.st_mtime_ns
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("device key store %s is readable by other users (mode %o): chmod 600 it", self.path,
                        info.st_mode & 0o777)
        try:
            self._keys = parse_keys(self.path.read_text("utf-8"), self.path)
            self.rejected = None
        except (OSError, UnicodeDecodeError, KeyStoreError) as exc:
            self.rejected = str(exc)
            log.error("device key store edit rejected, keeping the last good one: %s", exc)
        return self._keys
