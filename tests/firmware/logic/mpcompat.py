# What the shared logic tests need from their host, on CPython and on MicroPython alike.
import os

try:
    import tempfile
except ImportError:
    tempfile = None

_count = [0]


def _env(name):
    getenv = getattr(os, "getenv", None)  # the unix port has it, WebAssembly not
    return getenv(name) if getenv is not None else None


def tmpdir():
    """A new empty directory (under $BOUCLE_TMP on the unix port, /tmp in WebAssembly)."""
    if tempfile is not None:
        return tempfile.mkdtemp()
    _count[0] += 1
    path = "%s/t%d" % (_env("BOUCLE_TMP") or "/tmp", _count[0])
    os.mkdir(path)
    return path


def data_path(name):
    """Path of a protocol data file (vectors.json): $BOUCLE_DATA or /data on MicroPython,
    the repo on CPython."""
    if tempfile is None:
        return (_env("BOUCLE_DATA") or "/data") + "/" + name
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(here, "..", "..", "..", "boucle", "protocol", "v1", name)


def raises(exc, fn, *args):
    """True when fn(*args) raises exc."""
    try:
        fn(*args)
    except exc:
        return True
    return False
