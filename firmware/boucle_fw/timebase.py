# Time on the device: a monotonic millisecond count that never wraps, the offset to Unix
# time once NTP answered, and the re-stamping of readings taken before that.
#
# MicroPython's ticks_ms() wraps (2**30 ms, about 12.4 days, on the ESP32) and its epoch
# is 2000-01-01 on the ESP32, 1970 on other ports. Runs unchanged on CPython and MicroPython.

EPOCH_2000_TO_UNIX = 946684800
TICKS_PERIOD = 1 << 30
# No reading is older than this: a clock before it is not synced.
MIN_UNIX = 1700000000


def ticks_diff(new, old, period=TICKS_PERIOD):
    """new - old for wrapping tick counts (what time.ticks_diff does on the device)."""
    half = period // 2
    return ((new - old + half) % period) - half


class Timebase:
    """Monotonic ms since start, and Unix time once synced.

    `ticks` is a callable returning wrapping milliseconds (time.ticks_ms on the device);
    call now_ms() at least every few days so that no wrap goes unseen.
    """

    def __init__(self, ticks, period=TICKS_PERIOD):
        self.ticks = ticks
        self.period = period
        self._last = ticks()
        self._mono = 0
        self.offset_ms = None  # unix_ms - mono_ms, once synced
        self.synced_at_ms = None

    def now_ms(self):
        """Milliseconds since this Timebase started; never wraps, never goes back."""
        t = self.ticks()
        d = ticks_diff(t, self._last, self.period)
        if d > 0:
            self._mono += d
        self._last = t
        return self._mono

    @property
    def synced(self):
        return self.offset_ms is not None

    def sync(self, unix_s):
        """Record that it is now unix_s (NTP answer, already in Unix seconds)."""
        now = self.now_ms()
        self.offset_ms = int(unix_s * 1000) - now
        self.synced_at_ms = now

    def unix(self, mono_ms=None):
        """Unix seconds (int) at mono_ms (default now), or None before the first sync."""
        if self.offset_ms is None:
            return None
        if mono_ms is None:
            mono_ms = self.now_ms()
        return (mono_ms + self.offset_ms) // 1000

    def stamp(self, reading, mono_ms=None):
        """Set reading["ts"]; before sync, ts is None and "mono_ms" keeps the moment."""
        if mono_ms is None:
            mono_ms = self.now_ms()
        ts = self.unix(mono_ms)
        reading["ts"] = ts
        if ts is None:
            reading["mono_ms"] = mono_ms
        return reading

    def restamp(self, reading, boot):
        """Give a reading taken before sync its Unix time; True if it changed.

        Only readings of this boot can be placed (mono_ms restarts at every boot).
        """
        if reading.get("ts") is not None or self.offset_ms is None:
            return False
        if reading.get("boot") != boot or "mono_ms" not in reading:
            return False
        reading["ts"] = (reading["mono_ms"] + self.offset_ms) // 1000
        del reading["mono_ms"]
        return True


def ntp_to_unix(seconds, epoch_year):
    """Convert time.time() after ntptime.settime() to Unix seconds: ESP32 counts from 2000."""
    return seconds + EPOCH_2000_TO_UNIX if epoch_year == 2000 else seconds


def plausible(unix_s):
    return unix_s is not None and unix_s >= MIN_UNIX
