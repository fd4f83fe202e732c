"""The soak: the firmware's loop under the unix-port MicroPython over 60 days of virtual
time, against a real Mosquitto, through Wi-Fi flaps, broker outages (one longer than the
buffer holds), NTP resyncs that jump, and power cuts at random points, with an S0 meter on
esp32.PCNT (16-bit, no machine.Counter) and ticks that start 10 minutes before their wrap.

    python -m tests.firmware.soak [--days 60]     # prints the figures as JSON

run_soak() returns everything the test (test_soak.py) checks and docs/performance.md
quotes. The truth comes from the bench, not from the firmware: every S0 pulse the meter
gave, every read the firmware made of its counter (world.py's `reads`), NVS as written.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from boucle_fw.accounting import EnergyCounter

from simulator.boards import BOOT_MS, Interpreter, VirtualBoard
from tests.firmware.virtual import HOUR, MINUTE, PV, Broker, Observer, device_config

DAY = 24 * HOUR
WRAP = 1 << 30
CAPACITY = 240  # readings the buffer holds: the long outage (5 h) overflows it
PERSIST_WH = 100


@dataclass
class Boot:
    """One boot of the board, as the bench saw it."""

    index: int
    start_ms: int
    energy_start_wh: int  # what the firmware resumed from (RTC exact, or the NVS ceiling)
    ended: str = ""       # "soft" (orderly reset), "cut" (power cut), "running"
    reads: list[int] = field(default_factory=list)  # pulses the meter had given at each read
    pulses: int = 0       # pulses the meter gave during the boot
    cut_ms: int | None = None


@dataclass
class SoakReport:
    days: float
    wall_s: float
    boots: list[Boot]
    readings: dict[tuple[int, int], dict]   # (boot, seq) -> the reading as received
    health: list[dict]
    heap: list[dict]                         # {"day", "boot", "alloc", "free", "uptime_h"}
    nvs_writes: dict[str, int]
    ticks_wraps: int
    events: dict[str, int]
    resets: dict[str, int]
    broker_crashes: list[int]  # world ms at which Mosquitto was found dead (and restarted)

    def figures(self) -> dict:
        """The numbers the docs quote."""
        pulses = sum(b.pulses for b in self.boots)
        last = max(self.readings.items(), key=lambda kv: kv[0])[1]
        cut_boots = [b for b in self.boots if b.ended == "cut"]
        nexts = {b.index: b for b in self.boots}
        over = [nexts[b.index + 1].energy_start_wh - (b.energy_start_wh + b.reads[-1])
                for b in cut_boots if b.index + 1 in nexts and b.reads]
        tails = [b.pulses - b.reads[-1] for b in cut_boots if b.reads]
        steady = [h["alloc"] for h in self.heap if h["uptime_h"] >= 24]
        return {
            "days": self.days, "wall_s": round(self.wall_s, 1),
            "boots": len(self.boots), "power_cuts": len(cut_boots), "resets": self.resets,
            "events": self.events, "ticks_wraps": self.ticks_wraps, "broker_crashes": len(self.broker_crashes),
            "meter_wh": pulses, "device_last_wh": last["energy_wh"],
            "overcount_per_cut_wh": over, "unread_tail_per_cut_wh": tails,
            "readings_received": len(self.readings), "readings_taken": sum(self.taken(b) for b in self.boots),
            "readings_lost": len(self.lost()), "dropped_by_buffer": self.dropped(),
            "heap_alloc_min_max": [min(steady), max(steady)] if steady else None,
            "nvs_writes": self.nvs_writes,
            "nvs_writes_per_day": {k: round(v / self.days, 1) for k, v in self.nvs_writes.items()},
        }

    def taken(self, boot: Boot) -> int:
        """Readings the firmware took in a boot: one meter read each (an orderly stop reads
        once more, to count the energy since the last reading)."""
        return len(boot.reads) - (1 if boot.ended == "soft" else 0)

    def lost(self) -> list[tuple[int, int]]:
        return [(b.index, s) for b in self.boots for s in range(self.taken(b)) if (b.index, s) not in self.readings]

    def dropped(self) -> int:
        """What the board said its buffer dropped (health `dropped`, per boot, since boot)."""
        per_boot: dict[int, int] = {}
        for h in self.health:
            per_boot[h["boot"]] = max(per_boot.get(h["boot"], 0), h["dropped"])
        return sum(per_boot.values())


def _power(t_ms: int, rng: random.Random) -> float:
    """A workshop's load: 250 W at night, 1.5-4 kW by day, noisy."""
    hour = (t_ms // HOUR) % 24
    base = 250.0 if hour < 7 or hour >= 19 else 1500.0 + 2500.0 * math.sin(math.pi * (hour - 7) / 12)
    return round(base * rng.uniform(0.8, 1.2), 1)


def _events(start: int, days: int, rng: random.Random) -> list[tuple[int, str, object]]:
    """The scenario: (world ms, what, argument), sorted."""
    out: list[tuple[int, str, object]] = []
    end = start + days * DAY
    long_outage = start + int(days * 0.55) * DAY + 10 * HOUR  # day 33 at 10:00, 5 h

    def quiet(t: int) -> bool:  # nothing else near the long outage: its losses are its own
        return abs(t - long_outage) > 12 * HOUR and t < end - 2 * DAY

    def pick() -> int:
        while True:
            t = start + rng.randrange(HOUR, (days - 2) * DAY)
            if quiet(t):
                return t

    out += [(long_outage, "broker", False), (long_outage + 5 * HOUR, "broker", True)]
    for _ in range(6):
        t = pick()
        out += [(t, "broker", False), (t + rng.randrange(10 * MINUTE, 2 * HOUR), "broker", True)]
    for _ in range(25):
        t = pick()
        out += [(t, "wifi", False), (t + rng.randrange(MINUTE, 20 * MINUTE), "wifi", True)]
    t = pick()  # long enough for the firmware to give up on the Wi-Fi and reset itself
    out += [(t, "wifi", False), (t + 50 * MINUTE, "wifi", True)]
    for _ in range(8):
        out.append((pick(), "ntp_offset_s", rng.randint(-90, 90)))
    # power cuts in the first 40 days: the rest is one long run, the ticks wrapping in it
    for _ in range(8):
        t = start + rng.randrange(HOUR, 40 * DAY)
        if quiet(t):
            out.append((t, "cut", rng.randrange(30_000, 3 * HOUR)))
    return sorted(out, key=lambda e: e[0])


def _nvs_energy(board: VirtualBoard) -> int:
    blob = board.nvs()["boucle"]["energy"]
    counter = EnergyCounter.from_bytes(bytes.fromhex(blob[1]))
    assert counter is not None, "NVS energy unreadable after a power cut"
    return counter.total_wh


def run_soak(interpreter: Interpreter, broker: Broker, folder: Path, days: int = 60, seed: int = 15) -> SoakReport:
    rng = random.Random(seed)
    world = int((time.time() - (days + 1) * 86400) * 1000)
    world -= world % HOUR
    cfg = device_config(PV, broker, "energy-pulse", buffer={"capacity": CAPACITY},
                        energy={"persist_wh": PERSIST_WH})
    board = VirtualBoard(interpreter, folder, cfg, world_ms=world, ticks_start=WRAP - 10 * MINUTE,
                         params={"power_w": _power(world, rng)}, relay=True, heap="192k",
                         bench={"machine_counter": False})
    board.provision()
    observer = Observer(broker, client_id="fw-soak-observer")
    events = _events(world, days, rng)
    counts: dict[str, int] = {}
    resets: dict[str, int] = {}
    boots: list[Boot] = []
    heap: list[dict] = []
    wall0 = time.monotonic()
    end = world + days * DAY
    broker_up = True
    crashes: list[int] = []

    def booted() -> None:
        """Note a new boot: it resumes from the exact state (after a reset) or the NVS
        ceiling (after a power cut)."""
        prev = boots[-1] if boots else None
        if prev is None:
            energy = 0
        elif prev.ended == "cut":
            energy = _nvs_energy(board)
        else:  # RTC memory: exact, up to the last read (an orderly stop reads once more)
            reads = board.reads[prev.index]
            energy = prev.energy_start_wh + (reads[-1] if reads else 0)
        boots.append(Boot(len(boots), board.world_ms, energy))

    def run(until: int, heap_sample: bool = False) -> None:
        while True:
            if not board.running:
                board.start()
                board.ticks_start = 0  # a board's ticks start at 0; only the first boot starts near the wrap
                booted()
            msg = board.run(until, heap_sample)
            if "reset" in msg:
                resets[msg["reset"]] = resets.get(msg["reset"], 0) + 1
                boots[-1].ended = msg["reset"]
                board.world_ms += msg.get("sleep", 0) or BOOT_MS
                continue
            assert "repl" not in msg, f"main.py stopped: {msg}\n{board.tail()}"
            if heap_sample:
                up = (board.world_ms - boots[-1].start_ms) / HOUR
                heap.append({"day": round((board.world_ms - world) / DAY, 2), "boot": boots[-1].index,
                             "alloc": msg["heap_alloc"], "free": msg["heap_free"], "uptime_h": round(up, 1)})
            return

    try:
        t = world
        next_hour = world + HOUR
        while t < end:
            stop = min(next_hour, end, events[0][0] if events else end)
            if stop > board.world_ms:
                run(stop, heap_sample=(stop - world) % DAY == 0)
            if broker_up and broker.mosquitto.proc.poll() is not None:
                # Mosquitto 2.0.11 (Debian 12) sometimes dies with "double free detected"
                # while clients come and go: the broker's failure, not the board's. It is
                # started again, as systemd would, and counted.
                crashes.append(board.world_ms)
                broker.start()
            t = max(stop, board.world_ms)
            while events and events[0][0] <= t:
                at, what, arg = events.pop(0)
                counts[what] = counts.get(what, 0) + 1
                if what == "broker":
                    broker_up = bool(arg)
                    broker.start() if arg else broker.stop()
                elif what == "wifi":
                    board.set(wifi=arg)
                elif what == "ntp_offset_s":
                    board.set(ntp_offset_s=arg)
                elif what == "cut" and board.running:
                    msg = board.power_cut(rng.randrange(1, 600), at + HOUR)
                    if "cut" in msg:
                        boots[-1].ended, boots[-1].cut_ms = "cut", msg["cut"]
                        board.world_ms = msg["cut"] + int(arg)
                    elif "reset" in msg:
                        resets[msg["reset"]] = resets.get(msg["reset"], 0) + 1
                        boots[-1].ended = msg["reset"]
                        board.world_ms += BOOT_MS
            if t >= next_hour:
                next_hour += HOUR
                if board.running:
                    board.set(power_w=_power(t, rng))
                else:
                    board.params["power_w"] = _power(t, rng)
        _settle(observer)  # the last readings reach the observer
    finally:
        board.kill()
        board.close()
        observer.close()
    boots[-1].ended = boots[-1].ended or "running"
    for b, reads, stats in zip(boots, board.reads, board.boot_stats, strict=True):
        b.reads = reads
        b.pulses = stats.get("pulses", 0)
    readings: dict[tuple[int, int], dict] = {}
    for body in observer.on(PV, "telemetry"):
        for r in body["readings"]:
            readings.setdefault((body["boot"], r["seq"]), r)
    return SoakReport(days, time.monotonic() - wall0, boots, readings, observer.on(PV, "health"), heap,
                      board.stats.nvs_writes, board.stats.ticks_wraps, counts, resets, crashes)


def _settle(observer: Observer, quiet_s: float = 2.0, timeout_s: float = 60.0) -> None:
    """Wait until no telemetry arrived for quiet_s (the board is stopped between grants)."""
    deadline = time.monotonic() + timeout_s
    seen, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = len(observer.on(PV, "telemetry"))
        if n != seen:
            seen, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.1)


if __name__ == "__main__":
    import argparse
    import tempfile

    from simulator.boards import build_interpreter
    from tests.firmware.virtual import secured_broker

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        b = secured_broker(Path(d) / "broker", [PV])
        try:
            report = run_soak(build_interpreter(), b, Path(d) / "board", args.days, args.seed)
        finally:
            b.stop()
    print(json.dumps(report.figures(), indent=1))
