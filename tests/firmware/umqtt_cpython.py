"""The real umqtt.simple (micropython-lib, from PyPI) on CPython, over real sockets.

PyPI's `micropython-umqtt.simple` 1.3.4 is an upip-style sdist (no setup.py, so pip cannot
install it): the exact file is fetched once from PyPI, checked against its pinned SHA-256,
and cached under tests/artifacts/. Its `usocket`, `ustruct` and `ubinascii` imports get
CPython's socket, struct and binascii, with the two socket behaviours MicroPython streams
have and CPython's lack: read(n)/write(buf, n), and str accepted by write.
Version 1.3.4 predates connect(timeout=...); the firmware's MqttLink handles both.
"""

from __future__ import annotations

import binascii
import errno
import hashlib
import importlib.util
import io
import socket
import struct
import sys
import tarfile
import types
import urllib.request
from pathlib import Path

URL = ("https://files.pythonhosted.org/packages/bd/cf/697e3418b2f44222b3e848078b1e33ee76aedca9b6c2430ca1b1aec1ce1d/"
       "micropython-umqtt.simple-1.3.4.tar.gz")
SHA256 = "b6a2520239e3992c63a7de9370ee9b3d9d27819a90359c521f1c0f7ccab8d12f"
MEMBER = "micropython-umqtt.simple-1.3.4/umqtt/simple.py"
CACHE = Path(__file__).resolve().parent.parent / "artifacts" / "umqtt-simple-1.3.4.py"


def source() -> Path:
    """Path of umqtt/simple.py, downloading the pinned sdist from PyPI on first use."""
    if CACHE.exists():
        return CACHE
    with urllib.request.urlopen(URL, timeout=60) as r:
        data = r.read()
    got = hashlib.sha256(data).hexdigest()
    if got != SHA256:
        raise RuntimeError(f"micropython-umqtt.simple sdist SHA-256 {got} != pinned {SHA256}")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile(MEMBER)
        assert member is not None
        text = member.read()
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    CACHE.write_bytes(text)
    return CACHE


class MicroSocket:
    """A CPython TCP socket with MicroPython's stream methods."""

    def __init__(self, *args):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    def connect(self, addr):
        self.s.connect(addr)

    def settimeout(self, t):
        self.s.settimeout(t)

    def setblocking(self, flag):
        self.s.setblocking(flag)

    def setsockopt(self, level, option, value):
        self.s.setsockopt(level, option, value)

    def write(self, data, n=None):
        if isinstance(data, str):
            data = data.encode()
        data = bytes(data if n is None else data[:n])
        self.s.sendall(data)
        return len(data)

    def read(self, n):
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.s.recv(n - len(buf))
            except BlockingIOError:
                return buf or None  # non-blocking and nothing there yet
            except TimeoutError:
                raise OSError(errno.ETIMEDOUT, "timed out") from None
            if not chunk:
                return buf  # peer closed
            buf += chunk
        return buf

    def close(self):
        self.s.close()


def _usocket() -> types.ModuleType:
    m = types.ModuleType("usocket")
    m.socket = MicroSocket
    m.getaddrinfo = lambda host, port, *a: socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
    return m


def load() -> types.ModuleType:
    """The umqtt.simple module, imported from its real source."""
    if "umqtt.simple" in sys.modules:
        return sys.modules["umqtt.simple"]
    sys.modules.setdefault("usocket", _usocket())
    sys.modules.setdefault("ustruct", struct)
    sys.modules.setdefault("ubinascii", binascii)
    pkg = types.ModuleType("umqtt")
    pkg.__path__ = []
    sys.modules["umqtt"] = pkg
    spec = importlib.util.spec_from_file_location("umqtt.simple", source())
    mod = importlib.util.module_from_spec(spec)
    sys.modules["umqtt.simple"] = mod
    spec.loader.exec_module(mod)
    pkg.simple = mod
    return mod
