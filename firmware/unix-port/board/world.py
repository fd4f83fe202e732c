# The bench a virtual board stands on: its clock, what its sensors see, what survives a
# reset, and the line to the host that runs it. MicroPython unix port only, never on the
# ESP32 (the stand-ins for machine, network, esp32, ntptime and time are built on it).
#
# Time is virtual. It moves only when the app sleeps or reads the microsecond clock, and
# only as far as the host granted ("run" up to a world time): there the board reports
# and waits for the next grant. Nothing else is faked: sockets, TLS and files are real.
#
# The host speaks JSON lines on stdin; the board answers on stdout with lines starting
# with "@@" (everything else on stdout is the app's own output, as on the REPL):
#   host -> board  {"run": world_ms, "heap": bool}   go on up to that world time
#                  {"set": {"power_w": 1500, "wifi": false, ...}}   change the world
#                  {"cut": n}      power cut at the n-th hardware touch from now
#   board -> host  {"boot": ...}  {"at": world_ms, ...}  {"reset": cause, ...}
#                  {"sleep": ms, ...}  {"cut": world_ms, ...}
# Files of the board folder: board.json (the bench, written by the host), nvs.json (the
# NVS partition), rtc.json (RTC memory and clock: survives resets and deep sleep; the
# host deletes it for a power cut), flash/ (mounted at "/").

import gc
import json
import sys
import time as _real_time

import vfs

MASK = (1 << 30) - 1  # ticks_ms and ticks_us wrap here, as on the ESP32
EPOCH_2000 = 946684800  # the ESP32 counts time.time() from 2000-01-01
PWRON, HARD, WDT, DEEPSLEEP, SOFT = 1, 2, 3, 4, 5  # machine.*_RESET on the ESP32
EXIT_CODES = {"soft": 3, "watchdog": 4, "deep_sleep": 5}
DEFAULTS = {"power_w": 0.0, "weight_g": 0.0, "distance_mm": 500.0, "flow_lph": 0.0, "wifi": True, "ntp": True,
            "ntp_offset_s": 0, "rssi": -61}


class World:
    def __init__(self, folder):
        self.folder = folder
        self.host = vfs.VfsPosix()  # the host's file system, seen only by the bench
        self.bench = self._load("board.json") or {}
        rtc = self._load("rtc.json")
        self.cause = rtc["cause"] if rtc else PWRON
        self.rtc_memory = bytes.fromhex(rtc["memory"]) if rtc else b""
        # RTC error in s (time.time() + 946684800 - world time); None: lost in a power cut
        self.rtc_offset_s = rtc.get("rtc_offset_s") if rtc else None
        self.params = dict(DEFAULTS)
        self.params.update(self.bench.get("params", {}))
        self.ssid = self.bench.get("ssid", "atelier")
        self.speed = self.bench.get("speed", 0)  # virtual ms per real ms; 0: no real waiting
        # clock: ticks_ms and a ticks_us of its own, both wrapping; the world time is
        # boot time + whole wraps + ticks since boot, computed only when asked
        self.world_at_boot = int(self.bench["world_ms"])
        self.ticks0 = self.bench.get("ticks_start", 0) & MASK
        self.ms = self.ticks0
        self.wraps = 0
        self.frac_us = 0
        self.us = (self.ticks0 * 1000) & MASK
        self.us_per_read = self.bench.get("us_per_clock_read", 20)
        if self.rtc_offset_s is None:  # power-on: time.time() starts at 0 (2000-01-01)
            self.rtc_offset_s = EPOCH_2000 - self.world_at_boot // 1000
        self.grant_left = 0  # ms until the host's grant runs out
        self.heap_at_grant = False
        self.wdt_timeout = None
        self.wdt_left = None
        self.cut_after = None
        self.peripherals = []  # sensors on the clock: elapse(ms), next_event_ms(), fire()
        self.sensors = []
        self.hx711_by_pin = {}
        self.pin_levels = {}
        self.pin_irqs = {}  # GPIO -> (handler, pin)
        self.stations = []
        # what each read of the meter saw (S0: pulses so far this boot; PZEM: the sum of
        # its registers), in order: one per reading the firmware takes
        self.reads = []
        self.nvs = self._load("nvs.json") or {}
        self.stats = {"nvs_writes": {}, "nvs_commits": 0, "rtc_writes": 0, "wdt_feeds": 0,
                      "pulses": 0, "ntp_syncs": 0, "wifi_joins": 0, "ticks_wraps": 0}

    # --- board files (host side) -------------------------------------------------------

    def _path(self, name):
        return self.folder + "/" + name

    def _load(self, name):
        try:
            with self.host.open(self._path(name), "r") as f:
                return json.loads(f.read())
        except OSError:
            return None

    def save(self, name, data):
        """Replace a board file in one rename (a power cut leaves the old or the new)."""
        tmp = self._path(name + ".tmp")
        with self.host.open(tmp, "w") as f:
            f.write(json.dumps(data))
        self.host.rename(tmp, self._path(name))

    def _save_rtc(self, cause):
        self.save("rtc.json", {"cause": cause, "memory": self.rtc_memory.hex(),
                               "rtc_offset_s": self.rtc_offset_s})

    # --- line to the host ------------------------------------------------------------------

    def report(self, msg):
        sys.stdout.write("@@" + json.dumps(msg) + "\n")

    def world_ms(self):
        return self.world_at_boot + self.wraps * (MASK + 1) + self.ms - self.ticks0

    def status(self, heap=False):
        s = {"world_ms": self.world_ms(), "ticks_ms": self.ms, "stats": self.stats,
             "reads": self.reads}
        self.reads = []
        if heap:
            gc.collect()
            s["heap_alloc"] = gc.mem_alloc()
            s["heap_free"] = gc.mem_free()
        return s

    def wait_for_grant(self):
        """Block on the host's commands until it grants more time."""
        while self.grant_left <= 0:
            line = sys.stdin.readline()
            if not line:
                raise SystemExit(0)  # the host went away
            cmd = json.loads(line)
            if "set" in cmd:
                self.params.update(cmd["set"])
                for p in self.sensors:
                    p.changed()
            if "cut" in cmd:
                self.cut_after = cmd["cut"]
            if "run" in cmd:
                self.grant_left = cmd["run"] - self.world_ms()
                self.heap_at_grant = cmd.get("heap", False)
                if self.grant_left <= 0:
                    self.report(dict(self.status(self.heap_at_grant), at=self.world_ms()))

    # --- time ------------------------------------------------------------------------------

    def touch(self):
        """Every stand-in call is a hardware touch: an armed power cut may strike here."""
        if self.cut_after is not None:
            self.cut_after -= 1
            if self.cut_after <= 0:
                self.report(dict(self.status(), cut=self.world_ms()))
                while True:  # the host kills the process: nothing after this runs
                    sys.stdin.readline()

    def sleep_us(self, dus):
        """The app waits dus microseconds (real time too, at the bench's speed)."""
        self.touch()
        if self.speed:
            _real_time.sleep_us(int(dus / self.speed))
        self.advance(dus)

    def advance(self, dus):
        """Move the clock, stopping at each event on the way: the end of the grant, a
        watchdog timeout, a sensor event (an S0 pulse edge)."""
        while True:
            if self.wdt_left is not None and self.wdt_left <= 0:
                self.exit("watchdog", WDT)
            for p in self.peripherals:
                if p.next_event_ms() == 0:
                    p.fire()
            if self.grant_left <= 0:
                self.report(dict(self.status(self.heap_at_grant), at=self.world_ms()))
                self.wait_for_grant()
                continue
            if dus <= 0:
                return
            whole = (self.frac_us + dus) // 1000
            stop = self.grant_left
            if self.wdt_left is not None and self.wdt_left < stop:
                stop = self.wdt_left
            for p in self.peripherals:
                e = p.next_event_ms()
                if e is not None and e < stop:
                    stop = e
            if whole < stop:
                self._step(whole)
                self.frac_us += dus - whole * 1000
                self.us = (self.us + dus) & MASK
                return
            used = stop * 1000 - self.frac_us  # > 0: every stop is at least 1 ms away
            self._step(stop)
            self.frac_us = 0
            self.us = (self.us + used) & MASK
            dus -= used

    def _step(self, n):
        if not n:
            return
        self.ms += n
        if self.ms > MASK:
            self.ms &= MASK
            self.wraps += 1
            self.stats["ticks_wraps"] += 1
        self.grant_left -= n
        if self.wdt_left is not None:
            self.wdt_left -= n
        for p in self.peripherals:
            p.elapse(n)

    def ticks_us(self):
        self.advance(self.us_per_read)  # reading the clock takes a little time
        return self.us

    def unix(self):
        """The RTC as time.time() reads it (ESP32 epoch 2000)."""
        return self.world_ms() // 1000 + self.rtc_offset_s - EPOCH_2000

    # --- watchdog, resets, deep sleep -----------------------------------------------------

    def wdt_start(self, timeout_ms):
        self.wdt_timeout = timeout_ms
        self.wdt_left = timeout_ms

    def wdt_feed(self):
        self.touch()
        self.stats["wdt_feeds"] += 1
        self.wdt_left = self.wdt_timeout

    def exit(self, kind, cause, sleep_ms=0):
        """A reset, a watchdog or a deep sleep: RTC memory is kept, the process ends and
        the host starts the board again."""
        self._save_rtc(cause)
        msg = dict(self.status(), reset=kind)
        if sleep_ms:
            msg["sleep"] = sleep_ms
        self.report(msg)
        raise SystemExit(EXIT_CODES[kind])


    def meter_read(self):
        """The firmware read the pulse counter: note how many pulses it could see."""
        self.reads.append(self.stats["pulses"])

    def station_up(self):
        for s in self.stations:
            if s.isconnected():
                return True
        return False


world = None


def start(folder):
    """The bench of the board in `folder`, with its sensors wired."""
    global world
    import sensors
    world = World(folder)
    world.sensors = sensors.wire(world, world.bench.get("sensors", []))
    for s in world.sensors:
        if s.spec.get("type") == "hx711":
            world.hx711_by_pin[s.spec["dout"]] = s
            world.hx711_by_pin[s.spec["sck"]] = s
    return world
