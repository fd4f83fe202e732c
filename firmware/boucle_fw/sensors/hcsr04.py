# HC-SR04 ultrasonic distance over a bin: its fill level.
from boucle_fw import checks

KIND = "waste"
FIELDS = ("fill_pct",)
PROFILES = {
    "waste-ultrasonic": {
        "description": "Bin fill level by HC-SR04 (TRIG GPIO5, ECHO GPIO23 via divider), battery",
        "sensor": {
            "type": "hcsr04", "trigger": 5, "echo": 23, "samples": 5,
            "empty_mm": 1000, "full_mm": 100, "temp_c": 15.0,
        },
        "overrides": {"interval_s": 900, "deep_sleep": {"enabled": True, "publish_every": 4}},
    },
}
CALIBRATION = None


def check(errs, s, path):
    checks.pin(errs, s, "trigger", path, output=True)
    checks.pin(errs, s, "echo", path)
    checks.num(errs, s, "temp_c", path, -40, 85, required=False)
    checks.distance_range(errs, s, path)


def build(s, settings):
    from boucle_fw.drivers.ultrasonic import HcSr04
    return HcSr04(s["trigger"], s["echo"], s.get("samples", 5), s["empty_mm"], s["full_mm"],
                  s.get("temp_c", 15.0))
