# Pulse output of a water meter: a dry contact (reed switch) closing once per 1, 10 or
# 100 L on the usual meters, wired like an S0 output (pull-up, contact to GND).
#
# A reed contact bounces for milliseconds, and esp32.PCNT's glitch filter tops out near
# 12.8 us: a hardware count would count the bounces. So a pin IRQ counts falling edges
# with a software debounce (PulseTimer); pulses come at most a few per second (a 1 L/pulse
# meter at 3 m3/h is 0.8 Hz), far from what an IRQ can miss. Litres are integer on the
# device (accounting.EnergyCounter.add_pulses_ml keeps the mL remainder exactly).

from boucle_fw.drivers.pulse import PulseTimer

ML_PER_L = 1000


def ml_per_pulse(litres_per_pulse):
    """A meter's pulse weight in whole mL (0.1 L -> 100)."""
    return int(litres_per_pulse * ML_PER_L + 0.5)


def flow_lpm(ml_per_pulse_, dt_ms):
    """Flow (L/min) when two pulses are dt_ms apart."""
    if dt_ms is None or dt_ms <= 0:
        return 0.0
    return ml_per_pulse_ * 60.0 / dt_ms


def calibrated_ml_per_pulse(litres, pulses):
    """The pulse weight from a known volume drawn and the pulses it gave; ValueError when
    the volume gave no pulse (wiring, or a pin that is not the meter's)."""
    if pulses <= 0:
        raise ValueError("no pulse counted while %s L were drawn: check the wiring and the pin" % litres)
    if litres <= 0:
        raise ValueError("the known volume must be above 0 L")
    return int(litres * ML_PER_L / pulses + 0.5)


class WaterMeter:
    """read() -> pulses (since the last read), ml_per_pulse, flow_lpm.

    `store` keeps a calibrated pulse weight (NVS settings, key "water_ml_per_pulse")."""

    def __init__(self, pin, litres_per_pulse=1, debounce_ms=50, store=None, machine_mod=None, clock=None):
        if clock is None:
            import time as clock  # ticks_ms, ticks_diff
        self._time = clock
        if machine_mod is None:
            import machine as machine_mod
        self.store = store
        saved = store.get("water_ml_per_pulse") if store is not None else None
        self.ml = saved or ml_per_pulse(litres_per_pulse)
        self.timer = PulseTimer(1, debounce_ms, clock.ticks_diff)
        self._taken = 0
        self._cal_from = None
        p = machine_mod.Pin(pin, machine_mod.Pin.IN, machine_mod.Pin.PULL_UP)
        p.irq(self._irq, trigger=machine_mod.Pin.IRQ_FALLING)

    def _irq(self, _pin):
        self.timer.edge(self._time.ticks_ms())

    def read(self):
        total = self.timer.count
        pulses = total - self._taken
        self._taken = total
        return {"pulses": pulses, "ml_per_pulse": self.ml,
                "flow_lpm": flow_lpm(self.ml, self.timer.interval_now(self._time.ticks_ms()))}

    def calibrate(self, args):
        """args {"point": 0}: start counting; {"point": 1, "litres": L}: the volume drawn
        since point 0, read on the meter's dial, sets the pulse weight (kept in NVS)."""
        point = int(args.get("point", 1))
        if point == 0:
            self._cal_from = self.timer.count
            return {"pulses": 0}
        if self._cal_from is None:
            raise ValueError("send point 0 first (before drawing the known volume)")
        pulses = self.timer.count - self._cal_from
        self.ml = calibrated_ml_per_pulse(float(args["litres"]), pulses)
        if self.store is not None:
            self.store.set("water_ml_per_pulse", self.ml)
        return {"pulses": pulses, "litres_per_pulse": self.ml / ML_PER_L}
