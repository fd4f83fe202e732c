# Integer energy accounting, and its persistence across reboots without wearing flash.
#
# ESP32 floats are single precision: 1834512.0 + 0.3 is 1834512.0. So the total is an
# int of Wh and every fraction is kept as an exact integer remainder (mW*ms for
# integrated power, pulses for S0 inputs). Runs unchanged on CPython and MicroPython.

import struct

MWMS_PER_WH = 3600000000  # mW*ms in one Wh


class EnergyCounter:
    """Cumulative energy in integer Wh, fed by power samples, pulses or a meter's register.

    A water meter's litre counter is the same counter (`total_wh` holds litres then, fed by
    add_pulses_ml): one persistence, one ceiling rule, for every counting kind."""

    def __init__(self, total_wh=0):
        self.total_wh = int(total_wh)
        self.rem_mwms = 0     # mW*ms not yet worth one Wh
        self.rem_pulses = 0   # pulses*1000 not yet worth one Wh, in units of 1/ppk Wh
        self.last_meter_wh = None

    def add_power(self, power_w, dt_ms):
        """Integrate power (W) over dt_ms; negative power (export) does not count.

        Power is taken to the milliwatt (no sensor is better) so that mW*ms is an int.
        """
        if power_w <= 0 or dt_ms <= 0:
            return 0
        self.rem_mwms += int(power_w * 1000 + 0.5) * int(dt_ms)
        wh = self.rem_mwms // MWMS_PER_WH
        if wh:
            self.total_wh += wh
            self.rem_mwms -= wh * MWMS_PER_WH
        return wh

    def add_pulses(self, pulses, pulses_per_kwh):
        """Count S0 pulses: each is 1000/pulses_per_kwh Wh, remainder kept exactly."""
        if pulses <= 0:
            return 0
        self.rem_pulses += int(pulses) * 1000
        wh = self.rem_pulses // pulses_per_kwh
        if wh:
            self.total_wh += wh
            self.rem_pulses -= wh * pulses_per_kwh
        return wh

    def add_pulses_ml(self, pulses, ml_per_pulse):
        """Count water meter pulses of ml_per_pulse mL each into whole litres, the mL
        remainder kept exactly (in rem_pulses)."""
        if pulses <= 0:
            return 0
        self.rem_pulses += int(pulses) * int(ml_per_pulse)
        litres = self.rem_pulses // 1000
        if litres:
            self.total_wh += litres
            self.rem_pulses -= litres * 1000
        return litres

    def add_meter(self, meter_wh):
        """Follow a meter's own cumulative register (PZEM); a register that went down
        was reset (0x42 command or a new meter) and its new value counts in full."""
        meter_wh = int(meter_wh)
        last = self.last_meter_wh
        self.last_meter_wh = meter_wh
        if last is None:
            return 0
        delta = meter_wh - last if meter_wh >= last else meter_wh
        self.total_wh += delta
        return delta

    # --- state for RTC memory / NVS -------------------------------------------------

    _FMT = "<IqqqI"  # magic, total, rem_mwms, rem_pulses, last_meter (0xFFFFFFFF: none)
    _MAGIC = 0xB0C1E001

    def to_bytes(self):
        lm = 0xFFFFFFFF if self.last_meter_wh is None else self.last_meter_wh & 0xFFFFFFFF
        body = struct.pack(self._FMT, self._MAGIC, self.total_wh, self.rem_mwms, self.rem_pulses, lm)
        return body + struct.pack("<I", _checksum(body))

    @classmethod
    def from_bytes(cls, data):
        """Counter from to_bytes() output, or None if the bytes are not a valid state."""
        size = struct.calcsize(cls._FMT)
        if data is None or len(data) != size + 4:
            return None
        body = bytes(data[:size])
        if struct.unpack("<I", data[size:])[0] != _checksum(body):
            return None
        magic, total, rem_mwms, rem_pulses, lm = struct.unpack(cls._FMT, body)
        if magic != cls._MAGIC or total < 0:
            return None
        c = cls(total)
        c.rem_mwms = rem_mwms
        c.rem_pulses = rem_pulses
        c.last_meter_wh = None if lm == 0xFFFFFFFF else lm
        return c


def _checksum(data):
    # Fletcher-32 over bytes: enough to tell a valid state from RTC garbage after power-up.
    a = 0xFFFF
    b = 0xFFFF
    for x in data:
        a = (a + x) % 65535
        b = (b + a) % 65535
    return (b << 16) | a


class CounterStore:
    """Keeps an EnergyCounter across reboots.

    RTC memory (survives resets and deep sleep, not power loss) gets the exact state every
    cycle. NVS (flash) is written only every `persist_wh` Wh, every `persist_s` seconds and
    on orderly shutdown. NVS holds a ceiling: the saved total plus `persist_wh`. The
    counter is saved again before it passes the ceiling, so no reading ever carries more
    than the ceiling: after a power cut the counter resumes at the ceiling and never goes
    down (a decrease would read as a meter reset server-side); it overcounts by at most
    `persist_wh` Wh per power cut.

    `rtc` and `nvs` are objects with get() -> bytes|None and set(bytes).
    """

    def __init__(self, rtc, nvs, persist_wh=10, persist_s=900):
        self.rtc = rtc
        self.nvs = nvs
        self.persist_wh = persist_wh
        self.persist_s = persist_s
        self.ceiling = 0
        self.saved_at = None
        self.nvs_writes = 0
        self.restored_from = None  # "rtc", "nvs" or "new"

    def restore(self):
        """The counter as it was: exact from RTC memory, else the NVS ceiling."""
        saved = EnergyCounter.from_bytes(self.nvs.get())
        ceiling = saved.total_wh if saved is not None else 0
        counter = EnergyCounter.from_bytes(self.rtc.get())
        if counter is not None and (saved is None or counter.total_wh <= ceiling):
            self.restored_from = "rtc"
        elif saved is not None:
            counter = saved
            self.restored_from = "nvs"
        else:
            counter = EnergyCounter(0)
            self.restored_from = "new"
        self.ceiling = ceiling
        return counter

    def save(self, counter, now_s, exact=False):
        """Write NVS now: ceiling = total (+ persist_wh unless exact, i.e. shutting down)."""
        c = EnergyCounter(counter.total_wh + (0 if exact else self.persist_wh))
        c.last_meter_wh = counter.last_meter_wh
        if exact:
            c.rem_mwms = counter.rem_mwms
            c.rem_pulses = counter.rem_pulses
        self.nvs.set(c.to_bytes())
        self.ceiling = c.total_wh
        self.saved_at = now_s
        self.nvs_writes += 1

    def cycle(self, counter, now_s):
        """Call after each accounting step, before the reading leaves: RTC always,
        NVS when the counter reached the ceiling or persist_s has passed."""
        self.rtc.set(counter.to_bytes())
        if counter.total_wh >= self.ceiling or self.saved_at is None or \
                now_s - self.saved_at >= self.persist_s:
            self.save(counter, now_s)
            return True
        return False

    def shutdown(self, counter, now_s):
        """Orderly shutdown (reboot command, OTA, deep sleep is not one): exact save."""
        self.rtc.set(counter.to_bytes())
        self.save(counter, now_s, exact=True)
