# HX711 load-cell amplifier (bit-banged: DOUT, SCK), channel A gain 128.
#
# The median of N conversions rejects spikes (a lid slammed, a bag dropped). Tare and
# scale live in NVS: a bin that reboots full must not be zeroed, so there is no tare at
# boot. Auto-zero tracking follows slow drift (temperature, creep) only while the
# reading is near zero and steady, i.e. when the bin is empty.


def median(values):
    s = sorted(values)
    n = len(s)
    if n == 0:
        raise ValueError("no samples")
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2


def signed24(raw):
    return raw - 0x1000000 if raw & 0x800000 else raw


class Scale:
    """Counts to grams: weight = (counts - tare) / scale. Pure."""

    def __init__(self, tare=0, scale=420.0, zero_track_g=20, steady_g=5):
        self.tare_counts = tare
        self.scale = scale
        self.zero_track_g = zero_track_g
        self.steady_g = steady_g
        self._prev = None

    def grams(self, counts):
        return (counts - self.tare_counts) / self.scale

    def weight_g(self, counts):
        """Weight in integer grams, tracking the zero while empty and steady."""
        g = self.grams(counts)
        prev = self._prev
        self._prev = g
        if self.zero_track_g and abs(g) <= self.zero_track_g and prev is not None \
                and abs(g - prev) <= self.steady_g:
            # move a quarter of the way: drift is slow, a small real load is not erased at once
            self.tare_counts += (counts - self.tare_counts) / 4
            g = self.grams(counts)
        return int(g + 0.5) if g >= 0 else -int(-g + 0.5)

    def tare(self, counts):
        self.tare_counts = counts
        self._prev = None

    def calibrate(self, counts, known_g):
        if not known_g:
            raise ValueError("known_g must be the mass on the scale in grams, not 0")
        s = (counts - self.tare_counts) / known_g
        if s == 0:
            raise ValueError("no change from the tare — is the weight on the scale?")
        self.scale = s
        return s


class Hx711:
    """read() -> weight_g. `store` keeps tare and scale (get/set of JSON-able values)."""

    def __init__(self, dout, sck, samples=9, scale=420.0, zero_track_g=20, store=None,
                 pins=None):
        if pins is None:
            from machine import Pin
            pins = (Pin(dout, Pin.IN), Pin(sck, Pin.OUT, value=0))
        self.dout, self.sck = pins
        self.samples = samples
        self.store = store
        saved = store.get("hx711") if store is not None else None
        if saved:
            self.scale = Scale(saved[0], saved[1], zero_track_g)
        else:
            self.scale = Scale(0, scale, zero_track_g)

    def _conversion(self):
        import time
        t0 = time.ticks_ms()
        while self.dout.value():  # DOUT low = conversion ready (10 Hz)
            if time.ticks_diff(time.ticks_ms(), t0) > 500:
                raise OSError("HX711 not ready — check DOUT/SCK wiring and power")
        raw = 0
        sck = self.sck
        for _ in range(24):
            sck.value(1)
            sck.value(0)
            raw = (raw << 1) | self.dout.value()
        sck.value(1)  # 25th pulse: channel A, gain 128 for the next conversion
        sck.value(0)
        return signed24(raw)

    def counts(self):
        return median([self._conversion() for _ in range(self.samples)])

    def read(self):
        return {"weight_g": self.scale.weight_g(self.counts())}

    def _save(self):
        if self.store is not None:
            self.store.set("hx711", [self.scale.tare_counts, self.scale.scale])

    def tare(self, _args=None):
        self.scale.tare(self.counts())
        self._save()
        return {"tare_counts": self.scale.tare_counts}

    def calibrate(self, args):
        """args: {"known_g": mass now on the empty-tared scale}."""
        s = self.scale.calibrate(self.counts(), float(args["known_g"]))
        self._save()
        return {"scale": s}
