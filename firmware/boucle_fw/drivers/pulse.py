# S0 pulse output of an energy meter (open collector, pull-up to 3.3 V).
#
# Counting in hardware (machine.Counter or esp32.PCNT, on MicroPython builds that have
# them) misses no pulse while Python is busy; otherwise a pin IRQ counts falling edges
# with a software debounce. Energy is integer Wh from pulses per kWh (EnergyCounter);
# power comes from the time between the last two pulses.
#
# Two counters wrap and both are handled here: time.ticks_ms() (2**30 ms, 12.4 days, on
# the ESP32: every difference goes through ticks_diff) and esp32.PCNT, a 16-bit counter
# set to return to zero at PCNT_LIMIT (counts are taken modulo it). machine.Counter, the
# ESP32 firmware's shim over PCNT, extends the count itself and never wraps.

from boucle_fw.timebase import ticks_diff as _ticks_diff

MS_WH_PER_W = 3600000  # ms per hour: P[W] = E[Wh] * 3.6e6 / dt[ms]
# esp32.PCNT counts in 16 bits and returns to 0 on reaching its `max`: 32000, as
# machine.Counter sets it. Reads come at least this often in pulses (32000 pulses a
# minute is 1.9 MW at 1000 pulses/kWh), so the count modulo PCNT_LIMIT loses none.
PCNT_LIMIT = 32000
# No pulse for this long: the load is off (< 1 W at 1000 pulses/kWh). The last interval
# is forgotten well before ticks_diff would wrap (2**29 ms, 6.2 days); read() runs at
# least daily (interval_s <= 86400).
QUIET_MS = 86400000


def counter_delta(now, before, modulus=None):
    """Pulses between two counter values; `modulus` when the counter returns to 0 there."""
    if modulus is None:
        return now - before
    return (now - before) % modulus


def power_from_interval(pulses_per_kwh, dt_ms):
    """Power (W) when two pulses are dt_ms apart: each pulse is 1000/ppk Wh."""
    if dt_ms <= 0:
        return 0.0
    return 1000.0 * MS_WH_PER_W / (pulses_per_kwh * dt_ms)


class PulseTimer:
    """Edge bookkeeping, pure: debounce, count, time between pulses.

    Times are wrapping ticks (time.ticks_ms); `ticks_diff` is time.ticks_diff on the
    device, the same arithmetic in pure Python by default.
    """

    def __init__(self, pulses_per_kwh, debounce_ms=20, ticks_diff=_ticks_diff):
        self.ppk = pulses_per_kwh
        self.debounce_ms = debounce_ms
        self.diff = ticks_diff
        self.count = 0
        self.last_ms = None
        self.interval_ms = None

    def edge(self, t_ms):
        """A falling edge at t_ms; False when it is bounce."""
        if self.last_ms is not None:
            dt = self.diff(t_ms, self.last_ms)
            if dt < self.debounce_ms:
                return False
            self.interval_ms = dt
        self.last_ms = t_ms
        self.count += 1
        return True

    def interval_now(self, now_ms):
        """The time between pulses as of now: the last interval, or the time since the last
        pulse when the next one is late (a load that stopped must not keep reading its last
        rate); None when there is no rate (no interval yet, or silence beyond QUIET_MS)."""
        if self.last_ms is None:
            return None
        since = self.diff(now_ms, self.last_ms)
        if since > QUIET_MS:
            self.interval_ms = None  # off: no interval across the silence either
            self.last_ms = None
        if self.interval_ms is None:
            return None
        return max(self.interval_ms, since)

    def power_w(self, now_ms):
        """Power from the time between pulses (0 when stopped)."""
        dt = self.interval_now(now_ms)
        return 0.0 if dt is None else power_from_interval(self.ppk, dt)


class PulseInput:
    """read() -> pulses (since the last read), pulses_per_kwh, power_w."""

    def __init__(self, pin, pulses_per_kwh=1000, debounce_ms=20, machine_mod=None, esp32_mod=None):
        import time
        self._time = time
        if machine_mod is None:
            import machine as machine_mod
        self.timer = PulseTimer(pulses_per_kwh, debounce_ms, time.ticks_diff)
        self.ppk = pulses_per_kwh
        self._taken = 0
        self.hw = None
        self.modulus = None  # the hardware count's wrap, None when it does not wrap
        p = machine_mod.Pin(pin, machine_mod.Pin.IN, machine_mod.Pin.PULL_UP)
        counter = getattr(machine_mod, "Counter", None)
        if counter is not None:
            # the PCNT glitch filter tops out near 12.8 us: it rejects spikes, not bounce
            # (S0 outputs are solid-state and do not bounce)
            self.hw = counter(0, p, direction=counter.UP, edge=counter.FALLING, filter_ns=12000)
        elif esp32_mod is not None and hasattr(esp32_mod, "PCNT"):
            self.hw = esp32_mod.PCNT(0, pin=p, falling=esp32_mod.PCNT.INCREMENT, filter=1023,
                                     min=-PCNT_LIMIT, max=PCNT_LIMIT)
            self.hw.start()
            self.modulus = PCNT_LIMIT
        # The IRQ also runs with a hardware counter: it times the pulses for power.
        p.irq(self._irq, trigger=machine_mod.Pin.IRQ_FALLING)

    def _irq(self, _pin):
        self.timer.edge(self._time.ticks_ms())

    def _total(self):
        if self.hw is None:
            return self.timer.count
        return self.hw.value()

    def read(self):
        total = self._total()
        pulses = counter_delta(total, self._taken, self.modulus)
        self._taken = total
        return {"pulses": pulses, "pulses_per_kwh": self.ppk,
                "power_w": self.timer.power_w(self._time.ticks_ms())}
