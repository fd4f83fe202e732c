# HMAC-SHA256 (RFC 2104) for signing telemetry at the source (docs/protocol.md, "Signatures").
#
# MicroPython has hashlib.sha256 but no hmac module, and its sha256 objects have no
# copy(): the inner and outer hash states cannot be saved once and cloned per message.
# What can be kept is the padded keys: the two 64-byte blocks (key ^ ipad, key ^ opad)
# are made once, when the key is loaded, so a message costs two sha256 objects and no
# per-message XOR loop or key-sized allocation.
# Runs unchanged on CPython (tests compare it with the standard hmac module).

import hashlib
from binascii import hexlify, unhexlify

BLOCK = 64
KEY_BYTES = 32
"""A device key: 32 random bytes, written as 64 hex digits in the device config."""


def _pad(key, byte):
    return bytes(k ^ byte for k in key)


class Signer:
    """HMAC-SHA256 with one key, its padded blocks made once."""

    def __init__(self, key):
        if len(key) > BLOCK:
            key = hashlib.sha256(key).digest()
        key = key + bytes(BLOCK - len(key))
        self._inner = _pad(key, 0x36)
        self._outer = _pad(key, 0x5C)

    def start(self):
        """A hash that has taken the inner block: update() it with the message, then
        finish() it."""
        return hashlib.sha256(self._inner)

    def finish(self, inner):
        """The MAC (32 bytes) of the message an inner hash from start() has taken."""
        outer = hashlib.sha256(self._outer)
        outer.update(inner.digest())
        return outer.digest()

    def mac(self, message):
        """HMAC-SHA256 of one bytes-like message."""
        h = self.start()
        h.update(message)
        return self.finish(h)

    def hexmac(self, message):
        """The MAC as 64 lower-case hex digits (bytes)."""
        return hexlify(self.mac(message))


def from_hex(text):
    """A Signer for a key written as hex (the config's `sign_key`), or None for no key."""
    if not text:
        return None
    return Signer(unhexlify(text))
