"""The firmware type-checks against the MicroPython ESP32 stubs: a call the board does not
have (a misspelt machine/esp32/time function, a wrong argument) fails here, not on the board.

Stubs: PyPI micropython-esp32-stubs (pinned), installed with pip into tests/artifacts/.
Checker: pyright from npm (pinned in tests/firmware/package.json).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.firmware.conftest import FIRMWARE, HERE, REPO

STUBS = REPO / "tests" / "artifacts" / "mpy-stubs"
STUBS_VERSION = "1.29.0.post1"


@pytest.fixture(scope="session")
def pyright(micropython):
    marker = STUBS / f"micropython_esp32_stubs-{STUBS_VERSION}.dist-info"
    if not marker.is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(STUBS),
                        f"micropython-esp32-stubs=={STUBS_VERSION}", "micropython-stdlib-stubs==1.29.0.post2"],
                       check=True, capture_output=True, timeout=300)
    exe = HERE / "node_modules" / ".bin" / "pyright"

    def run(project):
        proc = subprocess.run([micropython.node, str(exe), "-p", str(project), "--outputjson"],
                              capture_output=True, text=True, timeout=300, check=False)
        report = json.loads(proc.stdout)
        return [d for d in report["generalDiagnostics"] if d["severity"] == "error"]
    return run


def test_firmware_has_no_call_the_board_lacks(pyright):
    errors = pyright(FIRMWARE / "pyrightconfig.json")
    ours = [f"{e['file']}:{e['range']['start']['line'] + 1}: {e['message']}" for e in errors
            if str(FIRMWARE) in e["file"]]
    assert ours == []


def test_the_check_catches_a_call_the_board_lacks(pyright, tmp_path):
    (tmp_path / "probe.py").write_text(
        "import time\nimport esp32\nimport machine\n"
        "time.ticks_ms()\n"
        "time.monotonic()\n"  # CPython only
        "esp32.NVS('boucle').get_i32('boot')\n"
        "machine.WDT(timeout=1000).stop()\n"  # the ESP32 watchdog cannot be stopped
    )
    (tmp_path / "pyrightconfig.json").write_text(json.dumps({
        "include": ["probe.py"], "typeshedPath": str(STUBS), "stubPath": str(STUBS),
        "typeCheckingMode": "basic", "reportMissingModuleSource": "none"}))
    lines = sorted(e["range"]["start"]["line"] + 1 for e in pyright(tmp_path / "pyrightconfig.json"))
    assert lines == [5, 7]
