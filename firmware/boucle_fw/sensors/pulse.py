# S0 pulse output of a DIN-rail energy meter.
from boucle_fw import checks

KIND = "energy"
FIELDS = ("energy_wh", "power_w")
PROFILES = {
    "energy-pulse": {
        "description": "S0 pulse output of a DIN-rail meter on GPIO27, 1000 pulses/kWh",
        "sensor": {"type": "pulse", "pin": 27, "pulses_per_kwh": 1000, "debounce_ms": 20},
    },
}
CALIBRATION = None  # the meter's constant is on its plate


def check(errs, s, path):
    checks.pin(errs, s, "pin", path)
    checks.num(errs, s, "pulses_per_kwh", path, 1, 100000, integer=True)
    checks.num(errs, s, "debounce_ms", path, 0, 1000, integer=True, required=False)


def build(s, settings):
    import esp32

    from boucle_fw.drivers.pulse import PulseInput
    return PulseInput(s["pin"], s["pulses_per_kwh"], s.get("debounce_ms", 20), esp32_mod=esp32)
