# SCT-013 current clamp on an ADC1 pin; power from the mains voltage assumed.
from boucle_fw import checks

KIND = "energy"
FIELDS = ("energy_wh", "power_w", "current_a")
PROFILES = {
    "energy-ct": {
        "description": "SCT-013-030 CT clamp (30 A / 1 V) on GPIO34 (ADC1), mains voltage assumed",
        "sensor": {
            "type": "ct", "pin": 34, "mains_hz": 50, "cycles": 10, "voltage_v": 230.0,
            "power_factor": 1.0, "noise_a": 0.05,
            # two points (ADC RMS counts, amps): 1 V RMS at 11 dB attenuation ~ 1241 counts
            "calibration": [[0, 0.0], [1241, 30.0]],
        },
    },
}
# (instruction, command, fixed args, the args key that takes the technician's value or None)
CALIBRATION = {
    "value": "known_a",
    "missing": "a CT clamp is calibrated with a known load: pass --known-a AMPS, or --known-w WATTS "
               "for a resistive load (kettle, heater) at --voltage-v",
    "steps": (
        ("Switch the measured circuit off (no current through the clamp).", "calibrate",
         {"point": 0, "amps": 0.0}, None),
        ("Switch on the known load ({value:g} A through the clamp) and leave it on.", "calibrate",
         {"point": 1}, "amps"),
    ),
}


def check(errs, s, path):
    checks.pin(errs, s, "pin", path, adc=True)
    checks.num(errs, s, "mains_hz", path, 45, 65)
    checks.num(errs, s, "cycles", path, 1, 100, integer=True, required=False)
    checks.num(errs, s, "voltage_v", path, 90, 260)
    checks.num(errs, s, "power_factor", path, 0.1, 1.0, required=False)
    checks.num(errs, s, "noise_a", path, 0, 10, required=False)
    cal = s.get("calibration")
    ok = isinstance(cal, list) and len(cal) == 2
    if ok:
        for p in cal:
            if not (isinstance(p, list) and len(p) == 2 and checks.is_num(p[0]) and checks.is_num(p[1])):
                ok = False
    if not ok:
        errs.add(path + ".calibration", "%r is not two [counts, amps] points" % (cal,),
                 "write [[counts1, amps1], [counts2, amps2]] from two reference loads")
    elif cal[0][0] == cal[1][0]:
        errs.add(path + ".calibration", "both points have the same counts",
                 "measure two different loads (e.g. 0 A and a known heater)")


def build(s, settings):
    from boucle_fw.drivers.ct import CtClamp
    cal = settings.get("ct_calibration") or s["calibration"]
    return CtClamp(s["pin"], s["mains_hz"], s.get("cycles", 10), s["voltage_v"],
                   s.get("power_factor", 1.0), s.get("noise_a", 0.05), cal, store=settings)
