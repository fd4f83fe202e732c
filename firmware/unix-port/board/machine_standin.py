# `machine` on a virtual board: the parts of the ESP32's module the firmware uses (Pin,
# ADC, UART, RTC, WDT, Counter, time_pulse_us, reset, deepsleep, reset_cause), over the
# bench (world.py) and its sensors (sensors.py). Installed as sys.modules["machine"].

import world as _world
from esp32_standin import PCNT as _PCNT

PWRON_RESET = _world.PWRON
HARD_RESET = _world.HARD
WDT_RESET = _world.WDT
DEEPSLEEP_RESET = _world.DEEPSLEEP
SOFT_RESET = _world.SOFT


def _w():
    return _world.world


def _sensor(kind, key, value):
    for s in _w().sensors:
        if s.spec.get("type") == kind and s.spec.get(key) == value:
            return s
    return None


def reset_cause():
    return _w().cause


def reset():
    _w().exit("soft", SOFT_RESET)


def soft_reset():
    reset()


def deepsleep(ms=0):
    _w().exit("deep_sleep", DEEPSLEEP_RESET, ms)


def lightsleep(ms=0):
    _w().sleep_us(ms * 1000)


def idle():
    pass


def freq(hz=None):
    return 160000000


def unique_id():
    return _w().folder[-6:].encode()


def time_pulse_us(pin, level, timeout_us=1000000):
    _w().touch()
    ranger = _sensor("hcsr04", "echo", pin.id)
    if ranger is None:
        _w().sleep_us(timeout_us)
        return -2
    us = ranger.echo_us()
    if us > timeout_us:
        _w().sleep_us(timeout_us)
        return -1
    _w().sleep_us(us)
    return us


class Pin:
    IN, OUT, OPEN_DRAIN = 1, 3, 7
    PULL_UP, PULL_DOWN = 2, 1
    IRQ_RISING, IRQ_FALLING = 1, 2

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        if value is not None:
            self.value(value)

    def value(self, v=None):
        w = _w()
        w.touch()
        hx = w.hx711_by_pin.get(self.id)
        if v is None:
            if hx is not None and hx.spec["dout"] == self.id:
                return hx.dout()
            return w.pin_levels.get(self.id, 1)
        v = 1 if v else 0
        was = w.pin_levels.get(self.id, 0)
        w.pin_levels[self.id] = v
        if hx is not None and hx.spec["sck"] == self.id:
            hx.sck(v, was)
        return None

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=IRQ_FALLING):
        if handler is None:
            _w().pin_irqs.pop(self.id, None)
        else:
            _w().pin_irqs[self.id] = (handler, self)


class ADC:
    ATTN_0DB, ATTN_2_5DB, ATTN_6DB, ATTN_11DB = 0, 1, 2, 3

    def __init__(self, pin, atten=None):
        self.clamp = _sensor("ct", "pin", pin.id)

    def read_u16(self):
        _w().touch()
        if self.clamp is None:
            return 0
        return self.clamp.adc_u16()


class UART:
    def __init__(self, id, baudrate=115200, bits=8, parity=None, stop=1, tx=None, rx=None,
                 timeout=0, timeout_char=0):
        self.meters = _sensor("pzem", "uart", id)
        self.timeout = timeout

    def any(self):
        return len(self.meters.out) if self.meters is not None else 0

    def write(self, data):
        _w().touch()
        if self.meters is not None:
            self.meters.request(bytes(data))
        return len(data)

    def read(self, n=None):
        _w().touch()
        out = self.meters.out if self.meters is not None else b""
        data = out if n is None else out[:n]
        if self.meters is not None:
            self.meters.out = out[len(data):]
        if n is not None and len(data) < n:
            _w().sleep_us(self.timeout * 1000)  # a short reply: the read times out
        return data or None


class I2C:
    def __init__(self, id, scl=None, sda=None, freq=400000):
        pass

    def readfrom_mem(self, addr, reg, n):
        raise OSError(19, "ENODEV: no I2C device on the virtual board")

    def writeto_mem(self, addr, reg, data):
        raise OSError(19, "ENODEV: no I2C device on the virtual board")


class RTC:
    def memory(self, data=None):
        w = _w()
        w.touch()
        if data is None:
            return w.rtc_memory
        if len(data) > 2048:
            raise ValueError("RTC memory holds 2048 bytes")
        w.rtc_memory = bytes(data)
        w.stats["rtc_writes"] += 1
        return None


class WDT:
    def __init__(self, id=0, timeout=5000):
        _w().wdt_start(timeout)

    def feed(self):
        _w().wdt_feed()


class Counter:
    """machine.Counter as the ESP32 firmware has it: a shim over a PCNT unit limited to
    +-32000 that counts its overflows, so that value() never wraps."""

    RISING, FALLING = 1, 2
    UP, DOWN = 1, 2
    _RANGE = 32000

    def __init__(self, unit_id, src=None, edge=RISING, direction=UP, filter_ns=0):
        self._pcnt = _PCNT(unit_id, min=-self._RANGE, max=self._RANGE, pin=src,
                           falling=_PCNT.INCREMENT if edge & Counter.FALLING else _PCNT.IGNORE,
                           rising=_PCNT.INCREMENT if edge & Counter.RISING else _PCNT.IGNORE)
        self._pcnt.owner = self
        self._overflows = 0
        self._pcnt.irq(self._overflow, _PCNT.IRQ_MAX)
        self._pcnt.start()

    def _overflow(self, pcnt):
        self._overflows += 1

    def value(self, value=None):
        _w().meter_read()
        current = self._pcnt.value()
        result = self._overflows * self._RANGE + current
        if value is not None:
            self._overflows = 0
            self._pcnt.value(0)
        return result


if not _w().bench.get("machine_counter", True):
    del Counter  # firmware without the shim (before MicroPython 1.25): esp32.PCNT only
