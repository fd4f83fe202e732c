# Current transformer (CT) clamp on an ADC1 pin, biased at mid-supply.
#
# RMS is taken over a whole number of mains cycles (a partial cycle biases it) with the
# DC offset (the bias voltage) removed as the mean of the same window. Integer sums: the
# ESP32's single-precision floats would lose the sum of squares.


def rms_counts(samples):
    """RMS of the AC part of ADC samples (counts), DC offset removed.

    Squares are summed as small ints in chunks of 32 (a 12-bit sample squared times 32
    stays under MicroPython's 31-bit small int, so no heap allocation per sample) and the
    chunks added as floats.
    """
    n = len(samples)
    if n == 0:
        return 0.0
    s = 0
    for x in samples:
        s += x
    mean = s // n
    acc = 0.0
    part = 0
    k = 0
    for x in samples:
        d = x - mean
        part += d * d
        k += 1
        if k == 32:
            acc += part
            part = 0
            k = 0
    acc += part
    off = s / n - mean  # the integer mean's rounding
    var = acc / n - off * off
    return var ** 0.5 if var > 0 else 0.0


def amps(rms, calibration, noise_a=0.0):
    """Amps from RMS counts by two-point calibration [[counts1, A1], [counts2, A2]];
    below noise_a the clamp reads 0 (ADC noise on an idle line)."""
    (c1, a1), (c2, a2) = calibration
    a = a1 + (rms - c1) * (a2 - a1) / (c2 - c1)
    return a if a >= noise_a else 0.0


def calibration_point(calibration, index, rms, known_a):
    """The calibration with point `index` (0 or 1) replaced by (rms, known_a)."""
    cal = [list(calibration[0]), list(calibration[1])]
    cal[index] = [rms, known_a]
    if cal[0][0] == cal[1][0]:
        raise ValueError("both calibration points at %s counts — use two different loads" % rms)
    return cal


class CtClamp:
    """read() -> current_a, power_w (apparent x assumed power factor)."""

    def __init__(self, pin, mains_hz=50, cycles=10, voltage_v=230.0, power_factor=1.0,
                 noise_a=0.05, calibration=((0, 0.0), (1241, 30.0)), adc=None, time_mod=None, store=None):
        if adc is None:
            from machine import ADC, Pin
            adc = ADC(Pin(pin), atten=ADC.ATTN_11DB)
        self.adc = adc
        if time_mod is None:
            import time as time_mod
        self.time = time_mod
        from array import array
        # 40 samples per mains cycle, in a buffer allocated once
        self.spacing_us = int(1000000 // (40 * mains_hz))
        self.buf = array("H", bytes(2 * 40 * cycles))
        self.voltage_v = voltage_v
        self.power_factor = power_factor
        self.noise_a = noise_a
        self.calibration = calibration
        self.store = store  # keeps a calibration made by command (NVS settings)
        self.last_rms = 0.0

    def sample(self):
        """Fill the buffer at a fixed pace: exactly `cycles` mains periods."""
        time = self.time
        buf = self.buf
        read = self.adc.read_u16
        step = self.spacing_us
        t = time.ticks_us()
        for i in range(len(buf)):
            buf[i] = read() >> 4  # 12-bit counts
            t = time.ticks_add(t, step)
            while time.ticks_diff(t, time.ticks_us()) > 0:
                pass
        return buf

    def read(self):
        self.last_rms = rms_counts(self.sample())
        a = amps(self.last_rms, self.calibration, self.noise_a)
        return {"current_a": a, "power_w": a * self.voltage_v * self.power_factor}

    def calibrate(self, args):
        """args: {"point": 0|1, "amps": known current now flowing}."""
        rms = rms_counts(self.sample())
        self.calibration = calibration_point(self.calibration, int(args.get("point", 1)), rms,
                                             float(args["amps"]))
        if self.store is not None:
            self.store.set("ct_calibration", self.calibration)
        return {"calibration": self.calibration}
