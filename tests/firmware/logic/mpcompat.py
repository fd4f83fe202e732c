# What the shared logic tests need from their host, on CPython and on MicroPython alike.
import os

try:
    import tempfile
except ImportError:
    tempfile = None

_count = [0]


def tmpdir():
    """A new empty directory."""
    if tempfile is not None:
        return tempfile.mkdtemp()
    _count[0] += 1
    path = "/tmp/t%d" % _count[0]
    os.mkdir(path)
    return path


def data_path(name):
    """Path of a protocol data file (vectors.json): /data on MicroPython, the repo on CPython."""
    if tempfile is None:
        return "/data/" + name
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(here, "..", "..", "..", "boucle", "protocol", "v1", name)


def raises(exc, fn, *args):
    """True when fn(*args) raises exc."""
    try:
        fn(*args)
    except exc:
        return True
    return False
