"""A fake ESP32 for the hardware-layer tests: `machine`, `network`, `esp32`, `ntptime`
modules and MicroPython's time and gc functions, backed by one Board whose flash (NVS), RTC
memory and clock survive simulated resets and deep sleeps.

Only hardware is faked; the firmware above it and the MQTT client (umqtt.simple) are real.
"""

from __future__ import annotations

import gc
import math
import sys
import time
import types

ESP32_EPOCH = 946684800


class BoardReset(Exception):
    """machine.reset() was called."""


class DeepSleep(Exception):
    """machine.deepsleep(ms) was called."""

    def __init__(self, ms):
        super().__init__(ms)
        self.ms = ms


class Board:
    PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5

    def __init__(self):
        self.nvs: dict[tuple[str, str], object] = {}
        self.nvs_commits = 0
        self.rtc_memory = b""
        self.cause = self.PWRON_RESET
        self.ap_up = True
        self.ssid = "atelier"
        self.joins = 0
        self.ntp_up = True
        self.virtual_us = 0
        self.wdt_feeds = 0
        self.wdt_fed_ms: list[int] = []
        self.wdt_timeout = None
        self.current_a = 5.0  # what the CT clamp sees
        self.adc_broken = False
        self.counts_per_amp = 1241 / 30.0
        self.slept_s = 0  # the RTC counts on in deep sleep: time.time() moves on by this
        self.distance_mm = 550.0  # what the ultrasonic ranger sees
        self.stop_after_sleeps = None
        self.sleeps = 0

    # --- life cycle ---------------------------------------------------------------------

    def power_cut(self):
        self.rtc_memory = b""
        self.cause = self.PWRON_RESET

    # --- time -----------------------------------------------------------------------------

    def ticks_ms(self):
        return (self.virtual_us // 1000) & ((1 << 30) - 1)

    def ticks_us(self):
        self.virtual_us += 10  # every read of the clock takes a little time
        return self.virtual_us & ((1 << 30) - 1)

    def sleep_ms(self, ms):
        self.virtual_us += int(ms) * 1000
        self.sleeps += 1
        if self.stop_after_sleeps is not None and self.sleeps >= self.stop_after_sleeps:
            raise KeyboardInterrupt("test done")

    def sleep_us(self, us):
        self.virtual_us += int(us)

    # --- modules --------------------------------------------------------------------------

    def install(self, monkeypatch):
        """Put the fake modules in sys.modules and MicroPython's time functions on time."""
        for name, mod in (("machine", self._machine()), ("network", self._network()),
                          ("esp32", self._esp32()), ("ntptime", self._ntptime())):
            monkeypatch.setitem(sys.modules, name, mod)
        monkeypatch.setattr(time, "ticks_ms", self.ticks_ms, raising=False)
        monkeypatch.setattr(time, "ticks_us", self.ticks_us, raising=False)
        monkeypatch.setattr(time, "ticks_add", lambda a, b: (a + b) & ((1 << 30) - 1), raising=False)
        monkeypatch.setattr(time, "ticks_diff", _ticks_diff, raising=False)
        monkeypatch.setattr(time, "sleep_ms", self.sleep_ms, raising=False)
        monkeypatch.setattr(time, "sleep_us", self.sleep_us, raising=False)
        real_time = time.time
        monkeypatch.setattr(time, "time", lambda: real_time() + self.slept_s)
        monkeypatch.setattr(gc, "mem_free", lambda: 112000, raising=False)  # ESP32 heap
        return self

    def _machine(self):
        board = self
        m = types.ModuleType("machine")
        for name in ("PWRON_RESET", "HARD_RESET", "WDT_RESET", "DEEPSLEEP_RESET", "SOFT_RESET"):
            setattr(m, name, getattr(Board, name))
        m.reset_cause = lambda: board.cause

        def reset():
            board.cause = Board.HARD_RESET
            raise BoardReset()

        def deepsleep(ms=0):
            board.cause = Board.DEEPSLEEP_RESET
            board.virtual_us += ms * 1000
            board.slept_s += ms / 1000
            raise DeepSleep(ms)

        m.reset = reset
        m.deepsleep = deepsleep

        class Pin:
            IN, OUT, PULL_UP, IRQ_FALLING = 1, 2, 3, 4

            def __init__(self, n, mode=None, pull=None, value=None):
                self.n = n
                self.v = value or 0
                self.handler = None

            def value(self, v=None):
                if v is None:
                    return self.v
                self.v = v

            def irq(self, handler, trigger=None):
                self.handler = handler

        class ADC:
            ATTN_11DB = 3

            def __init__(self, pin, atten=None):
                self.i = 0

            def read_u16(self):
                if board.adc_broken:
                    raise OSError(5, "EIO")
                # 40 samples per mains cycle, as the CT driver paces them
                amp = board.current_a * board.counts_per_amp * math.sqrt(2)
                v = 2048 + amp * math.sin(2 * math.pi * self.i / 40)
                self.i += 1
                return int(v) << 4

        class RTC:
            def memory(self, data=None):
                if data is None:
                    return board.rtc_memory
                if len(data) > 2048:
                    raise ValueError("RTC memory holds 2048 bytes")
                board.rtc_memory = bytes(data)

        class WDT:
            def __init__(self, id=0, timeout=5000):
                board.wdt_timeout = timeout

            def feed(self):
                board.wdt_feeds += 1
                board.wdt_fed_ms.append(board.virtual_us // 1000)

        def time_pulse_us(pin, level, timeout_us):
            # echo of the HC-SR04 at 15 degC, there and back
            return int(2 * board.distance_mm / ((331.3 + 0.606 * 15) / 1000))

        m.Pin, m.ADC, m.RTC, m.WDT = Pin, ADC, RTC, WDT
        m.time_pulse_us = time_pulse_us
        return m

    def _network(self):
        board = self
        n = types.ModuleType("network")
        n.STA_IF = 0

        class WLAN:
            def __init__(self, interface):
                self.connected = False

            def active(self, flag=None):
                return True

            def connect(self, ssid, password):
                board.joins += 1
                self.connected = board.ap_up and ssid == board.ssid

            def disconnect(self):
                self.connected = False

            def isconnected(self):
                if not board.ap_up:
                    self.connected = False
                return self.connected

            def status(self, what=None):
                return -61 if what == "rssi" else 1010

        n.WLAN = WLAN
        return n

    def _esp32(self):
        board = self
        e = types.ModuleType("esp32")

        class NVS:
            def __init__(self, namespace):
                self.ns = namespace

            def set_blob(self, key, data):
                board.nvs[(self.ns, key)] = bytes(data)

            def get_blob(self, key, buf):
                data = board.nvs.get((self.ns, key))
                if not isinstance(data, bytes):
                    raise OSError(-4354)  # ESP_ERR_NVS_NOT_FOUND
                if len(data) > len(buf):
                    raise OSError(-4364)  # ESP_ERR_NVS_INVALID_LENGTH
                buf[:len(data)] = data
                return len(data)

            def set_i32(self, key, v):
                board.nvs[(self.ns, key)] = int(v)

            def get_i32(self, key):
                v = board.nvs.get((self.ns, key))
                if not isinstance(v, int):
                    raise OSError(-4354)
                return v

            def commit(self):
                board.nvs_commits += 1

        e.NVS = NVS
        return e

    def _ntptime(self):
        board = self
        n = types.ModuleType("ntptime")
        n.host = "pool.ntp.org"
        n.timeout = 1

        def settime():
            if not board.ap_up or not board.ntp_up:
                raise OSError(110)  # ETIMEDOUT

        n.settime = settime
        return n


def _ticks_diff(a, b):
    period = 1 << 30
    return ((a - b + period // 2) % period) - period // 2
