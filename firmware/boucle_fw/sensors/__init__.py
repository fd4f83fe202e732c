# Sensor types: one descriptor module each, registered here (Telegraf's inputs.Add, one
# micropython-lib package per driver). A descriptor says
#   KIND         the device kind it measures (boucle_fw/kinds/)
#   FIELDS       the reading fields its driver's read() produces
#   PROFILES     the workshop's named profiles using it: description, sensor entry with
#                default pins and settings, top-level overrides
#   check(errs, sensor, path)    its config keys (boucle_fw.checks)
#   build(sensor, settings)      its driver, from its config entry and NVS settings
#   CALIBRATION  None, or the workshop's guided steps (workshop/calibrate.py)
# Adding a type: its driver under drivers/, its descriptor here, its name in TYPES.
#
# Descriptors are imported on first use: a board loads only the types it has.

from boucle_fw.kinds import load

TYPES = ("pzem", "ct", "pulse", "hx711", "hcsr04", "vl53l0x", "water_pulse")

_loaded = {}


def get(name):
    """The descriptor module of a sensor type; KeyError for an unknown one."""
    return load("boucle_fw.sensors", TYPES, _loaded, name)


def kind_of(name):
    return get(name).KIND


def profiles():
    """Every type's named profiles: name -> {kind, description, sensors, overrides}."""
    out = {}
    for t in TYPES:
        d = get(t)
        for name in d.PROFILES:
            p = d.PROFILES[name]
            entry = {"kind": d.KIND, "description": p["description"], "sensors": [p["sensor"]]}
            if "overrides" in p:
                entry["overrides"] = p["overrides"]
            out[name] = entry
    return out


def profile_type(profile):
    """The sensor type of a named profile, or None."""
    for t in TYPES:
        if profile in get(t).PROFILES:
            return t
    return None
