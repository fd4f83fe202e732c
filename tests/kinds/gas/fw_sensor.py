# The firmware descriptor of the throwaway `gas_pulse` sensor type (as sensors/water_pulse.py).
from boucle_fw import checks

KIND = "gas"
FIELDS = ("gas_dm3", "gas_flow_dm3h")
PROFILES = {
    "gas-pulse": {
        "description": "Reed contact of a gas meter's dial on GPIO27, 10 dm³ per pulse",
        "sensor": {"type": "gas_pulse", "pin": 27, "dm3_per_pulse": 10},
    },
}
CALIBRATION = {
    "value": "known_dm3",
    "missing": "a gas meter is checked with a known volume: pass --known-dm3",
    "steps": (
        ("Note the dial.", "calibrate", {"point": 0}, None),
        ("Stop when the dial shows {value:g} dm³ more.", "calibrate", {"point": 1}, "dm3"),
    ),
}


def check(errs, s, path):
    checks.pin(errs, s, "pin", path)
    checks.num(errs, s, "dm3_per_pulse", path, 1, 1000)


def build(s, settings):
    raise NotImplementedError("no driver: the throwaway type only goes through the servers")
