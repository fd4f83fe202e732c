# Pulse output (dry contact) of a water meter.
from boucle_fw import checks

KIND = "water"
FIELDS = ("water_l", "flow_lpm")
PROFILES = {
    "water-pulse": {
        "description": "Dry-contact pulse output of a water meter on GPIO26, 1 L per pulse",
        "sensor": {"type": "water_pulse", "pin": 26, "litres_per_pulse": 1, "debounce_ms": 50},
    },
}
CALIBRATION = {
    "value": "known_l",
    "missing": "a water meter is checked with a known volume: pass --known-l LITRES, the volume "
               "drawn as read on the meter's dial (at least 100 pulses' worth, e.g. --known-l 100)",
    "steps": (
        ("Read the meter's dial and note it; then start drawing water (open a tap).", "calibrate",
         {"point": 0}, None),
        ("Stop when the dial shows {value:g} L more than noted.", "calibrate", {"point": 1}, "litres"),
    ),
}


def check(errs, s, path):
    checks.pin(errs, s, "pin", path)
    checks.num(errs, s, "litres_per_pulse", path, 0.001, 1000)
    checks.num(errs, s, "debounce_ms", path, 0, 1000, integer=True, required=False)


def build(s, settings):
    from boucle_fw.drivers.water import WaterMeter
    return WaterMeter(s["pin"], s["litres_per_pulse"], s.get("debounce_ms", 50), store=settings)
