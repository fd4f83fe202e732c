# App OTA install, rollback and confirmation on a real filesystem: CPython and MicroPython.
import json
import os

from boucle_fw import ota

try:
    from tests.firmware.logic.mpcompat import tmpdir
except ImportError:
    from mpcompat import tmpdir


class Bundle:
    def __init__(self, version, files, tamper=None):
        self.files = files
        manifest = {"version": version, "files": {}}
        for name in files:
            manifest["files"][name] = ota.digest(files[name])
        self.manifest = json.dumps(manifest).encode()
        if tamper:
            self.files = dict(files)
            self.files[tamper] = b"evil"
        self.reads = []

    def read(self, name):
        self.reads.append(name)
        if name == "manifest.json":
            return self.manifest
        return self.files[name]


def _files(tag):
    return {"boucle_fw/device.mpy": b"M\x06" + tag, "boucle_fw/__init__.mpy": b"M\x06init"}


def test_install_activates_by_pointer():
    apps = tmpdir() + "/apps"
    assert ota.select_app(3, apps) is None  # nothing installed: base app
    assert ota.install(Bundle("1.1.0", _files(b"a")), apps) == "1.1.0"
    with open(apps + "/1.1.0/boucle_fw/device.mpy", "rb") as f:
        assert f.read() == b"M\x06a"
    assert ota.read_pointer(apps) == {"version": "1.1.0", "previous": None, "boots": 0, "good": False}
    assert ota.select_app(3, apps) == apps + "/1.1.0"
    assert ota.mark_good(apps) is True
    assert ota.read_pointer(apps)["good"] is True


def test_tampered_file_is_refused_and_nothing_changes():
    apps = tmpdir() + "/apps"
    ota.install(Bundle("1.1.0", _files(b"a")), apps)
    ota.mark_good(apps)
    try:
        ota.install(Bundle("1.2.0", _files(b"b"), tamper="boucle_fw/device.mpy"), apps)
    except ota.OtaError as e:
        assert "SHA-256" in str(e)
    else:
        raise AssertionError("tampered bundle installed")
    assert ota.read_pointer(apps)["version"] == "1.1.0"
    assert sorted(os.listdir(apps)) == ["1.1.0", "current.json"]


def test_bad_manifests():
    for m in ({"version": "../x", "files": {"a": "0" * 64}},
              {"version": "1", "files": {"../boot.py": "0" * 64}},
              {"version": "1", "files": {}},
              {"version": "1", "files": {"a.mpy": "abc"}}):
        try:
            ota.check_manifest(m)
        except ota.OtaError:
            continue
        raise AssertionError("accepted %r" % (m,))


def test_rollback_when_new_app_never_reaches_a_good_cycle():
    apps = tmpdir() + "/apps"
    ota.install(Bundle("1.1.0", _files(b"a")), apps)
    ota.select_app(3, apps)
    ota.mark_good(apps)
    ota.install(Bundle("1.2.0", _files(b"b")), apps)
    for _ in range(3):  # three boots that crash before a good cycle
        assert ota.select_app(3, apps) == apps + "/1.2.0"
    assert ota.select_app(3, apps) == apps + "/1.1.0"  # fourth boot: back to 1.1.0
    p = ota.read_pointer(apps)
    assert p["version"] == "1.1.0" and p["good"] is True and p["rolled_back_from"] == "1.2.0"
    assert "1.2.0" not in os.listdir(apps)


def test_confirmed_app_stays_and_old_folders_go():
    apps = tmpdir() + "/apps"
    ota.install(Bundle("1.1.0", _files(b"a")), apps)
    ota.mark_good(apps)
    ota.install(Bundle("1.2.0", _files(b"b")), apps)
    ota.select_app(3, apps)
    ota.mark_good(apps)
    ota.install(Bundle("1.3.0", _files(b"c")), apps)
    ota.select_app(3, apps)
    ota.mark_good(apps)
    for _ in range(10):
        assert ota.select_app(3, apps) == apps + "/1.3.0"
    assert sorted(os.listdir(apps)) == ["1.2.0", "1.3.0", "current.json"]


def test_first_app_rolls_back_to_base():
    apps = tmpdir() + "/apps"
    ota.install(Bundle("1.1.0", _files(b"a")), apps)
    for _ in range(2):
        ota.select_app(2, apps)
    assert ota.select_app(2, apps) is None
    assert ota.read_pointer(apps) is None
