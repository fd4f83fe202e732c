"""An OTA bundle built by firmware/tools/bundle.py, served over real HTTP, fetched by the
device's HTTP client and installed; then the new app is imported from its folder."""

from __future__ import annotations

import functools
import http.server
import json
import socket
import subprocess
import sys
import threading

import pytest
from boucle_fw import ota
from boucle_fw.hw.http import HttpSource

from firmware.tools import bundle


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "www"
    manifest = bundle.build(root / "b", "9.9.9")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/b/", manifest, root / "b"
    server.shutdown()


RUN_INSTALLED = """
import sys
sys.path.insert(0, "/apps/9.9.9")
from boucle_fw import protocol, device, buffer, accounting, config
for m in (protocol, device, buffer, accounting, config):
    assert m.__file__.endswith(".mpy"), m.__file__
c = accounting.EnergyCounter(10)
c.add_power(3600, 1000)
print("OK", c.total_wh, protocol.encode_status(True, 2).decode())
"""


def test_bundle_over_http_installs_and_runs(served, tmp_path, micropython):
    url, manifest, _ = served
    apps = str(tmp_path / "apps")
    assert ota.install(HttpSource(url, socket_mod=socket), apps) == "9.9.9"
    assert len(manifest["files"]) > 20
    assert ota.select_app(3, apps) == apps + "/9.9.9"
    # the installed .mpy files are what MicroPython would load; check they are the bundle's
    for rel, digest in manifest["files"].items():
        assert ota.digest((tmp_path / "apps" / "9.9.9" / rel).read_bytes()) == digest
    # and MicroPython imports the installed .mpy files and runs them
    proc = micropython.run(RUN_INSTALLED, mounts={tmp_path / "apps" / "9.9.9": "/apps/9.9.9"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == 'OK 11 {"v":1,"online":true,"boot":2}'


def test_tampered_file_on_the_server_is_refused(served, tmp_path):
    url, _, folder = served
    (folder / "boucle_fw" / "device.mpy").write_bytes(b"M\x06tampered")
    apps = str(tmp_path / "apps")
    with pytest.raises(ota.OtaError, match="SHA-256"):
        ota.install(HttpSource(url, socket_mod=socket), apps)
    assert ota.read_pointer(apps) is None


def test_missing_bundle_says_so(served, tmp_path):
    url, _, _ = served
    with pytest.raises(OSError, match="404"):
        HttpSource(url + "nope/", socket_mod=socket).read("manifest.json")


def test_bundle_command_line(tmp_path):
    proc = subprocess.run([sys.executable, "firmware/tools/bundle.py", str(tmp_path / "out")],
                          capture_output=True, text=True, check=False, cwd=bundle.APP.parent.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("bundle 0.1.0: ")
    assert (tmp_path / "out" / "manifest.json").exists()


BOOT_THEN_IMPORT = """
exec(open("/boot.py").read())
from boucle_fw import protocol, ota
import json
print("FILE", protocol.__file__)
print("POINTER", json.dumps(ota.read_pointer()))
"""


def test_boot_py_runs_the_installed_app_on_micropython(served, tmp_path, micropython):
    url, _, _ = served
    apps = tmp_path / "apps"
    ota.install(HttpSource(url, socket_mod=socket), str(apps))
    proc = micropython.run(BOOT_THEN_IMPORT, mounts={apps: "/apps", bundle.APP.parent / "boot.py": "/boot.py"})
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "FILE /apps/9.9.9/boucle_fw/protocol.mpy" in proc.stdout
    pointer = json.loads(proc.stdout.split("POINTER ", 1)[1])
    assert pointer["version"] == "9.9.9" and pointer["boots"] == 1 and pointer["good"] is False
