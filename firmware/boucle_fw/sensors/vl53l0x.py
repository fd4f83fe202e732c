# VL53L0X time-of-flight distance over a bin (I2C): its fill level. No profile.
from boucle_fw import checks

KIND = "waste"
FIELDS = ("fill_pct",)
PROFILES = {}
CALIBRATION = None


def check(errs, s, path):
    checks.pin(errs, s, "sda", path, output=True)
    checks.pin(errs, s, "scl", path, output=True)
    checks.num(errs, s, "address", path, 8, 119, integer=True, required=False)
    checks.distance_range(errs, s, path)


def build(s, settings):
    from boucle_fw.drivers.vl53l0x import Vl53l0x
    return Vl53l0x(s["sda"], s["scl"], s.get("address", 0x29), s.get("samples", 5), s["empty_mm"],
                   s["full_mm"])
