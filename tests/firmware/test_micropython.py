"""The pure-logic tests of tests/firmware/logic, run again on the real MicroPython: the
WebAssembly build and the unix port (32-bit, single-precision floats, as the ESP32).

Each logic test module is loaded with the firmware package and every test_* function in
it is called; the same functions run on CPython through ordinary pytest collection.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from tests.firmware.conftest import FIRMWARE, VECTORS_DIR

LOGIC = Path(__file__).resolve().parent / "logic"
MODULES = sorted(p.stem for p in LOGIC.glob("test_*.py"))

RUNNER = """
import sys
mod = __import__({module!r})
names = [n for n in dir(mod) if n.startswith("test_")]
failed = 0
for name in sorted(names):
    try:
        getattr(mod, name)()
        print("PASS", name)
    except Exception as e:
        failed += 1
        print("FAIL", name)
        sys.print_exception(e, sys.stdout)
print("DONE", len(names), failed)
"""


def _test_names(module: str) -> list[str]:
    tree = ast.parse((LOGIC / f"{module}.py").read_text())
    return sorted(n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_"))


@pytest.mark.parametrize("module", MODULES)
def test_logic_on_micropython(micropython, module):
    proc = micropython.run(RUNNER.format(module=module), mounts={LOGIC: "/lib"})
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr + out
    passed = sorted(line.split()[1] for line in out.splitlines() if line.startswith("PASS "))
    assert f"DONE {len(_test_names(module))} 0" in out, out
    assert passed == _test_names(module), out


@pytest.mark.parametrize("module", MODULES)
def test_logic_on_the_unix_port(unix_micropython, module, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RUNNER.format(module=module))
    env = {"MICROPYPATH": f".frozen:{LOGIC}:{FIRMWARE}", "BOUCLE_TMP": str(tmp_path), "BOUCLE_DATA": str(VECTORS_DIR)}
    proc = subprocess.run([str(unix_micropython.binary), str(script)], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr + out
    passed = sorted(line.split()[1] for line in out.splitlines() if line.startswith("PASS "))
    assert f"DONE {len(_test_names(module))} 0" in out, out
    assert passed == _test_names(module), out
