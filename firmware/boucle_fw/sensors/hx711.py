# Load cell through an HX711: a bin's weight.
from boucle_fw import checks

KIND = "waste"
FIELDS = ("weight_g",)
PROFILES = {
    "waste-scale": {
        "description": "Bin on a load cell through an HX711 (DOUT GPIO19, SCK GPIO18)",
        "sensor": {
            "type": "hx711", "dout": 19, "sck": 18, "samples": 9,
            "scale": 420.0, "zero_track_g": 20,
        },
    },
}
CALIBRATION = {
    "value": "known_g",
    "missing": "a scale is calibrated with a known weight: pass --known-g GRAMS (e.g. --known-g 10000)",
    "steps": (
        ("Empty the scale (bin empty, lid closed, nothing leaning on it).", "tare", {}, None),
        ("Put the known weight of {value:g} g on the scale and let it settle.", "calibrate", {}, "known_g"),
    ),
}


def check(errs, s, path):
    checks.pin(errs, s, "dout", path)
    checks.pin(errs, s, "sck", path, output=True)
    checks.num(errs, s, "samples", path, 1, 50, integer=True, required=False)
    checks.num(errs, s, "scale", path, -1e7, 1e7)
    if checks.is_num(s.get("scale")) and s.get("scale") == 0:
        errs.add(path + ".scale", "0 counts per gram", "calibrate with a known weight")
    checks.num(errs, s, "zero_track_g", path, 0, 1000, required=False)


def build(s, settings):
    from boucle_fw.drivers.hx711 import Hx711
    return Hx711(s["dout"], s["sck"], s.get("samples", 9), s["scale"], s.get("zero_track_g", 20),
                 store=settings)
