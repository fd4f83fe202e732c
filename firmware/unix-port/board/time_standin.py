# `time` on a virtual board: the ESP32's clock functions over the bench's virtual clock
# (world.py). ticks_ms/ticks_us wrap at 2**30 as on the board; time.time() counts from
# 2000-01-01 (the ESP32 epoch) and is set by ntptime. Installed as sys.modules["time"].

import time as _real

import world as _world

ticks_add = _real.ticks_add  # the interpreter's own: 32-bit build, period 2**30
ticks_diff = _real.ticks_diff


def _w():
    return _world.world


def ticks_ms():
    return _w().ms


def ticks_us():
    return _w().ticks_us()


def ticks_cpu():
    return _w().ticks_us()


def sleep_us(us):
    _w().sleep_us(int(us))


def sleep_ms(ms):
    _w().sleep_us(int(ms) * 1000)


def sleep(s):
    _w().sleep_us(int(s * 1000000))


def time():
    return _w().unix()


def time_ns():
    return _w().unix() * 1000000000


def gmtime(secs=None):
    if secs is None:
        secs = time()
    return _real.gmtime(secs + _world.EPOCH_2000)


localtime = gmtime


def mktime(t):
    return _real.mktime(t) - _world.EPOCH_2000
