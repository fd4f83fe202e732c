# Bin fill level by distance: HC-SR04 ultrasonic ranger (echo through a 5 V -> 3.3 V
# divider) and the conversion from distance to fill percentage shared with the VL53L0X.


def sound_mm_per_us(temp_c):
    """Speed of sound in mm/us at temp_c (331.3 m/s at 0 degC, +0.606 m/s per degree)."""
    return (331.3 + 0.606 * temp_c) / 1000


def echo_to_mm(echo_us, temp_c):
    """One-way distance of an echo that took echo_us there and back."""
    return echo_us * sound_mm_per_us(temp_c) / 2


def fill_pct(distance_mm, empty_mm, full_mm):
    """0 % at the bottom distance, 100 % at the full mark, clamped."""
    pct = (empty_mm - distance_mm) * 100.0 / (empty_mm - full_mm)
    return 0.0 if pct < 0 else (100.0 if pct > 100 else pct)


def median_valid(values):
    """Median of the valid (>= 0) values, or None when none is."""
    good = sorted(v for v in values if v is not None and v >= 0)
    if not good:
        return None
    n = len(good)
    return good[n // 2] if n % 2 else (good[n // 2 - 1] + good[n // 2]) / 2


class HcSr04:
    """read() -> fill_pct (and nothing when no echo came back)."""

    def __init__(self, trigger, echo, samples=5, empty_mm=1000, full_mm=100, temp_c=15.0,
                 pins=None):
        if pins is None:
            from machine import Pin
            pins = (Pin(trigger, Pin.OUT, value=0), Pin(echo, Pin.IN))
        self.trig, self.echo = pins
        self.samples = samples
        self.empty_mm = empty_mm
        self.full_mm = full_mm
        self.temp_c = temp_c

    def ping_us(self):
        import time

        from machine import time_pulse_us
        self.trig.value(0)
        time.sleep_us(2)
        self.trig.value(1)
        time.sleep_us(10)
        self.trig.value(0)
        return time_pulse_us(self.echo, 1, 30000)  # < 0 on timeout (~5 m)

    def distance_mm(self, temp_c=None):
        import time
        t = self.temp_c if temp_c is None else temp_c
        echoes = []
        for _ in range(self.samples):
            echoes.append(self.ping_us())
            time.sleep_ms(60)  # let the previous ping's echoes die out
        us = median_valid(echoes)
        return None if us is None else echo_to_mm(us, t)

    def read(self, temp_c=None):
        d = self.distance_mm(temp_c)
        if d is None:
            return {}
        return {"fill_pct": fill_pct(d, self.empty_mm, self.full_mm)}
