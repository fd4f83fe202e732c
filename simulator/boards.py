"""Virtual boards: the firmware itself (boot.py, main.py, boucle_fw) on MicroPython's unix
port, one process per board, with stand-ins only for the ESP32's machine, network, esp32,
ntptime and time (firmware/unix-port/board/). umqtt.simple, sockets, TLS and the file
system are the interpreter's own.

A board runs in virtual time granted by its host: `run(until_ms)` lets it go on to that
world time (as fast as it computes, or paced by `speed`), then it waits. Between grants
the host changes its world (power, weight, Wi-Fi, NTP) and its power (cut, restore).
What survives what, as on the ESP32: NVS (nvs.json) everything; RTC memory and clock
(rtc.json) resets and deep sleep, not a power cut; the flash folder everything.
"""

from __future__ import annotations

import json
import os
import queue
import selectors
import shutil
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
UNIX_PORT = REPO / "firmware" / "unix-port"
STANDINS = UNIX_PORT / "board"
FIRMWARE = REPO / "firmware"
BOOT_MS = 1500  # what a reset costs in world time before the board runs again
WAIT_S = 120.0  # how long a board may compute through one grant (real seconds)


class InterpreterUnavailable(RuntimeError):
    """The unix-port MicroPython cannot be built here: what is missing and how to get it."""


@dataclass(frozen=True)
class Interpreter:
    """MicroPython 1.28's unix port, 32-bit, single-precision floats (firmware/unix-port/build.sh)."""

    binary: Path
    mpy_cross: Path
    umqtt: Path  # folder holding umqtt/ (micropython-lib's umqtt.simple)


def build_tools_missing() -> str | None:
    """Why the interpreter cannot be built on this machine, or None when it can."""
    for tool, package in (("gcc", "gcc"), ("make", "make"), ("pkg-config", "pkg-config"), ("flock", "util-linux")):
        if shutil.which(tool) is None:
            return f"{tool} not found: apt-get install {package} gcc-multilib"
    probe = subprocess.run(["gcc", "-m32", "-x", "c", "-", "-o", os.devnull], input="int main(void){return 0;}",
                           capture_output=True, text=True, check=False)
    if probe.returncode:
        return "gcc cannot build 32-bit programs: apt-get install gcc-multilib"
    return None


def build_interpreter(cache: Path | None = None) -> Interpreter:
    """Build the interpreter once (cached by the tarball's hash) and locate it."""
    missing = build_tools_missing()
    if missing:
        raise InterpreterUnavailable(missing)
    cmd = [str(UNIX_PORT / "build.sh")] + ([str(cache)] if cache else [])
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
    if done.returncode:
        raise InterpreterUnavailable(f"firmware/unix-port/build.sh failed:\n{done.stderr[-2000:]}")
    binary = Path(done.stdout.strip().splitlines()[-1])
    top = binary.parents[3]
    return Interpreter(binary, top / "mpy-cross" / "build" / "mpy-cross",
                       top / "lib" / "micropython-lib" / "micropython" / "umqtt.simple")


def compile_app(interpreter: Interpreter, out: Path) -> dict[str, int]:
    """boucle_fw compiled to .mpy by this interpreter's mpy-cross into out/boucle_fw;
    {relative path: bytes}."""
    sizes = {}
    src = FIRMWARE / "boucle_fw"
    for py in sorted(src.rglob("*.py")):
        rel = py.relative_to(src.parent).with_suffix(".mpy")
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([str(interpreter.mpy_cross), "-o", str(target), str(py)],
                              capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"mpy-cross failed on {py}: {done.stderr.strip()}")
        sizes[rel.as_posix()] = target.stat().st_size
    return sizes


class WifiRelay:
    """The access point between a board and its broker: a TCP relay on the loopback. While
    the Wi-Fi is down it refuses connections and has cut those that were open, so the
    board's sockets fail as a board's do when its Wi-Fi goes."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.lock = threading.Lock()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        self.closed = False
        self.thread = threading.Thread(target=self._serve, name=f"wifi-relay-{self.port}", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.closed:
            for key, _ in self.selector.select(0.2):
                if key.data is None:
                    self._accept()
                else:
                    self._forward(key.fileobj, key.data)

    def _accept(self) -> None:
        try:
            board, _ = self.listener.accept()
        except OSError:
            return
        with self.lock:
            if not self.up:
                board.close()
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                board.close()  # the broker is down: the board sees its connection closed
                return
            for sock in (board, upstream):  # a relay must not add Nagle's delays of its own
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.pairs.append((board, upstream))
            self.selector.register(board, selectors.EVENT_READ, upstream)
            self.selector.register(upstream, selectors.EVENT_READ, board)

    def _forward(self, src, dst) -> None:
        try:
            data = src.recv(65536)
        except OSError:
            data = b""
        if data:
            try:
                dst.sendall(data)
                return
            except OSError:
                pass
        self._drop(src)

    def _drop(self, sock) -> None:
        with self.lock:
            for pair in list(self.pairs):
                if sock in pair:
                    self.pairs.remove(pair)
                    for s in pair:
                        try:
                            self.selector.unregister(s)
                        except (KeyError, ValueError):
                            pass
                        s.close()

    def set_up(self, up: bool) -> None:
        """Wi-Fi up or down; down cuts every open connection at once."""
        with self.lock:
            self.up = up
            pairs = [] if up else list(self.pairs)
        for board, _ in pairs:
            self._drop(board)

    def close(self) -> None:
        self.closed = True
        self.set_up(False)
        self.thread.join(2)
        self.listener.close()


@dataclass
class BoardStats:
    """What the stand-ins counted, summed over every boot of a board."""

    pulses: int = 0
    nvs_writes: dict[str, int] = field(default_factory=dict)
    nvs_commits: int = 0
    rtc_writes: int = 0
    wdt_feeds: int = 0
    ntp_syncs: int = 0
    wifi_joins: int = 0
    ticks_wraps: int = 0
    boots: int = 0

    def add(self, s: dict[str, Any]) -> None:
        self.pulses += s.get("pulses", 0)
        for k, v in s.get("nvs_writes", {}).items():
            self.nvs_writes[k] = self.nvs_writes.get(k, 0) + v
        for name in ("nvs_commits", "rtc_writes", "wdt_feeds", "ntp_syncs", "wifi_joins", "ticks_wraps"):
            setattr(self, name, getattr(self, name) + s.get(name, 0))


class VirtualBoard:
    """One ESP32 running the firmware on the unix port, in a folder of its own.

    `config` is the board's config.json (boucle_fw.config.make_config); its `sensors`
    are also the bench's wiring. `relay=True` puts a WifiRelay between the board and the
    broker named in the config (needed for Wi-Fi losses that cut TCP connections).
    """

    def __init__(self, interpreter: Interpreter, folder: Path, config: dict, *, world_ms: int,
                 ticks_start: int = 0, params: dict | None = None, speed: float = 0,
                 heap: str = "256k", relay: bool = False, bench: dict | None = None,
                 app: Path | None = None):
        self.interpreter = interpreter
        self.folder = Path(folder)
        self.flash = self.folder / "flash"
        self.config = config
        self.world_ms = world_ms
        self.ticks_start = ticks_start
        self.params = dict(params or {})
        self.speed = speed
        self.heap = heap
        self.bench = dict(bench or {})
        self.app = app  # a folder holding a compiled boucle_fw (default: compiled here)
        self.relay: WifiRelay | None = None
        if relay:
            self.relay = WifiRelay(config["mqtt"]["host"], config["mqtt"]["port"])
        self.proc: subprocess.Popen | None = None
        self.events: queue.Queue = queue.Queue()
        self.output: list[str] = []
        self.stats = BoardStats()
        self.reads: list[list[int]] = []  # per boot: what each meter read saw (world.py)
        self.boot_stats: list[dict[str, Any]] = []  # per boot that ended: its stand-ins' counts
        self._boot_stats: dict[str, Any] = {}
        self.last: dict[str, Any] = {}
        self.log = self.folder / "board.log"

    # --- the board's files ------------------------------------------------------------

    def provision(self) -> None:
        """Write the flash as the workshop does: config.json, boot.py, main.py, the app in /lib."""
        self.flash.mkdir(parents=True, exist_ok=True)
        cfg = self.config
        if self.relay is not None:
            cfg = {**cfg, "mqtt": {**cfg["mqtt"], "host": "127.0.0.1", "port": self.relay.port}}
        (self.flash / "config.json").write_text(json.dumps(cfg))
        for name in ("boot.py", "main.py"):
            shutil.copy(FIRMWARE / name, self.flash / name)
        lib = self.flash / "lib"
        shutil.rmtree(lib / "boucle_fw", ignore_errors=True)
        if self.app is not None:
            shutil.copytree(self.app / "boucle_fw", lib / "boucle_fw")
        else:
            compile_app(self.interpreter, lib)

    def nvs(self) -> dict:
        path = self.folder / "nvs.json"
        return json.loads(path.read_text()) if path.exists() else {}

    # --- life cycle -----------------------------------------------------------------------

    def start(self, cause_after_power_cut: bool = False) -> dict:
        """Power the board up at self.world_ms (or start it again after a reset); returns
        its boot report once it waits for a grant."""
        assert self.proc is None, "already running"
        if cause_after_power_cut:
            (self.folder / "rtc.json").unlink(missing_ok=True)
        bench = {**self.bench, "world_ms": self.world_ms, "ticks_start": self.ticks_start,
                 "params": self.params, "speed": self.speed, "sensors": self.config["sensors"],
                 "ssid": self.config["wifi"]["ssid"]}
        (self.folder / "board.json").write_text(json.dumps(bench))
        env = {**os.environ, "MICROPYPATH": f".frozen:{STANDINS}:{self.interpreter.umqtt}"}
        log = self.log.open("a")
        self.proc = subprocess.Popen(
            [str(self.interpreter.binary), "-X", f"heapsize={self.heap}", str(STANDINS / "start.py"),
             str(self.folder)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, text=True, bufsize=1)
        log.close()
        self.events = queue.Queue()
        self.reads.append([])
        threading.Thread(target=self._read, args=(self.proc, self.events), daemon=True).start()
        boot = self._next()
        if "boot" not in boot:
            raise RuntimeError(f"board did not boot: {boot}\n{self.tail()}")
        self.stats.boots += 1
        self._boot_stats = {}
        return boot

    def _read(self, proc: subprocess.Popen, events: queue.Queue) -> None:
        with self.log.open("a") as log:
            for line in proc.stdout:
                if line.startswith("@@"):
                    events.put(json.loads(line[2:]))
                else:
                    self.output.append(line.rstrip("\n"))
                    log.write(line)
                    log.flush()
        events.put({"exit": proc.wait()})

    def _send(self, msg: dict) -> None:
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()

    def _next(self, timeout: float = WAIT_S) -> dict:
        try:
            msg = self.events.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"board {self.folder.name} silent for {timeout} s\n{self.tail()}") from None
        if "stats" in msg:
            self._boot_stats = msg["stats"]
        if msg.get("reads"):
            self.reads[-1].extend(msg["reads"])
        if "world_ms" in msg:
            self.world_ms = msg["world_ms"]
        self.last = msg
        return msg

    def tail(self, n: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-n:])

    def _ended(self) -> None:
        """The process is gone: count its boot's stats."""
        if self.proc is None:
            return
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        self.proc = None
        self.stats.add(self._boot_stats)
        self.boot_stats.append(self._boot_stats)
        self._boot_stats = {}

    def run(self, until_ms: int, heap: bool = False) -> dict:
        """Let the board run up to world time until_ms. Returns its report: {"at": ...} when
        it got there, {"reset": ..., "sleep": ...} when it reset or went to deep sleep (the
        process has ended; start() it again), {"repl": ...} when main.py stopped."""
        self.grant(until_ms, heap)
        return self.report()

    def grant(self, until_ms: int, heap: bool = False) -> None:
        """Let the board go on up to until_ms without waiting (several boards run at once)."""
        self._send({"run": until_ms, "heap": heap})

    def report(self) -> dict:
        """Wait for the board to stop after a grant: what run() returns."""
        while True:
            msg = self._next()
            if "at" in msg or "repl" in msg:
                return msg
            if "reset" in msg:
                self._next()  # its exit
                self._ended()
                return msg
            if "exit" in msg:
                self._ended()
                raise RuntimeError(f"board {self.folder.name} exited ({msg['exit']})\n{self.tail()}")

    def set(self, **params: Any) -> None:
        """Change the world; takes effect now (the board waits between grants)."""
        self.params.update(params)
        if self.relay is not None and "wifi" in params:
            self.relay.set_up(bool(params["wifi"]))
        if self.running:
            self._send({"set": params})  # else it starts in this world (board.json)

    def power_cut(self, after_touches: int, until_ms: int) -> dict:
        """Run towards until_ms and cut the power at the after_touches-th hardware touch
        (a sensor read, a clock wait, an NVS or RTC write): wherever the app is then. RTC
        memory and clock are lost; NVS and flash keep what was written. Returns the cut
        report ({"cut": world_ms, ...}), or {"at": ...} when the grant ended first."""
        self._send({"cut": after_touches})
        self._send({"run": until_ms})
        while True:
            msg = self._next()
            if "at" in msg:
                self._send({"cut": None})
                return msg
            if "cut" in msg:
                self.kill()
                (self.folder / "rtc.json").unlink(missing_ok=True)
                return msg
            if "reset" in msg:  # it reset first (watchdog, Wi-Fi given up): no cut
                self._next()
                self._ended()
                return msg
            if "exit" in msg or "repl" in msg:
                raise RuntimeError(f"board stopped before the power cut: {msg}\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: nothing of the board's runs after this (no cleanup, no DISCONNECT)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        self._ended()

    def close(self) -> None:
        self.kill()
        if self.relay is not None:
            self.relay.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def run_through_resets(board: VirtualBoard, until_ms: int, heap: bool = False) -> list[dict]:
    """Run a board to until_ms, starting it again after each reset, watchdog or deep
    sleep, as the ESP32 restarts itself. Returns the reports (resets and the last one)."""
    reports = []
    while True:
        if not board.running:
            board.start()
        msg = board.run(until_ms, heap)
        reports.append(msg)
        if "reset" in msg:
            board.world_ms += msg.get("sleep", 0) or BOOT_MS
            continue
        return reports
