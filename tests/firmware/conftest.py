"""Fixtures for the firmware tests: the real MicroPython interpreters, WebAssembly (npm)
and the unix port (built from firmware/unix-port/, once per tarball)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from simulator.boards import Interpreter, build_interpreter, build_tools_missing
from tests.conftest import require_binary

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
FIRMWARE = REPO / "firmware"
VECTORS_DIR = REPO / "boucle" / "protocol" / "v1"


class MicroPython:
    """Runs scripts on MicroPython (WebAssembly build driven by Node)."""

    def __init__(self, node: str):
        self.node = node

    def run(self, script: str, mounts: dict[Path, str] | None = None, timeout: float = 120):
        mounts = {FIRMWARE / "boucle_fw": "/lib/boucle_fw", VECTORS_DIR: "/data", **(mounts or {})}
        path = HERE / "node_modules" / ".script.py"
        # one file per call, so parallel runs in one session do not share it
        path = path.with_name(f".script-{abs(hash(script))}.py")
        path.write_text(script)
        try:
            proc = subprocess.run(
                [self.node, str(HERE / "mp_run.mjs"), str(path), *(f"{k}={v}" for k, v in mounts.items())],
                cwd=HERE, capture_output=True, text=True, timeout=timeout, check=False,
            )
        finally:
            path.unlink(missing_ok=True)
        return proc


@pytest.fixture(scope="session")
def micropython() -> MicroPython:
    require_binary("node", "nodejs")
    wanted = (HERE / "node_modules" / "@micropython" / "micropython-webassembly-pyscript",
              HERE / "node_modules" / "pyright")
    if not all(p.is_dir() for p in wanted):
        require_binary("npm", "npm")
        subprocess.run([shutil.which("npm") or "npm", "install", "--no-audit", "--no-fund"],
                       cwd=HERE, check=True, capture_output=True, timeout=300)
    return MicroPython(shutil.which("node") or "node")


@pytest.fixture(scope="session")
def unix_micropython() -> Interpreter:
    """MicroPython 1.28's unix port, 32-bit with single-precision floats as on the ESP32,
    built by firmware/unix-port/build.sh into its cache (about 45 s the first time)."""
    missing = build_tools_missing()
    if missing:
        message = f"cannot build the unix-port MicroPython: {missing}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must not skip this test)")
        pytest.skip(message)
    return build_interpreter()


@pytest.fixture
def broker(tmp_path):
    """Mosquitto as production runs it, knowing the devices the unix-port tests use."""
    from tests.firmware.virtual import BIN, DEVICE, LASER, PV, WATER, secured_broker
    b = secured_broker(tmp_path / "broker", [DEVICE, BIN, LASER, PV, WATER])
    yield b
    b.stop()


@pytest.fixture
def observer(broker):
    from tests.firmware.virtual import Observer
    o = Observer(broker)
    yield o
    o.close()


@pytest.fixture
def boards():
    """Virtual boards made by a test, killed at its end."""
    made = []
    yield made
    for b in made:
        b.close()
