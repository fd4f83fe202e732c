# The vocabulary of config checks: each problem is "path: problem — fix".
#
# Used by config.validate for the top-level settings and by every sensor type's
# descriptor (boucle_fw/sensors/) for its own keys. Runs on MicroPython and CPython.

# ESP32 ADC1 channels. ADC2 (GPIO 0, 2, 4, 12-15, 25-27) cannot be read while Wi-Fi is on.
ADC1_PINS = (32, 33, 34, 35, 36, 37, 38, 39)
# GPIO 34-39 are input only; 6-11 are wired to the SPI flash; 20, 24, 28-31 do not exist.
INPUT_ONLY_PINS = (34, 35, 36, 37, 38, 39)
FLASH_PINS = (6, 7, 8, 9, 10, 11)
MISSING_PINS = (20, 24, 28, 29, 30, 31)


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v):
    return (isinstance(v, (int, float))) and not isinstance(v, bool)


class Errors:
    def __init__(self):
        self.items = []

    def add(self, path, problem, fix):
        self.items.append(path + ": " + problem + " — " + fix)


def num(errs, obj, key, path, lo, hi, integer=False, required=True):
    if key not in obj:
        if required:
            errs.add(path + "." + key, "missing", "add it (a number from %s to %s)" % (lo, hi))
        return
    v = obj[key]
    ok = is_int(v) if integer else is_num(v)
    if not ok:
        errs.add(path + "." + key, "%r is not %s" % (v, "an int" if integer else "a number"),
                 "write a number from %s to %s without quotes" % (lo, hi))
    elif not lo <= v <= hi:
        errs.add(path + "." + key, "%r is out of range" % (v,), "use a value from %s to %s" % (lo, hi))


def text(errs, obj, key, path, fix, required=True, empty_ok=False):
    if key not in obj:
        if required:
            errs.add(path + "." + key, "missing", fix)
        return
    v = obj[key]
    if not isinstance(v, str) or (not empty_ok and not v):
        errs.add(path + "." + key, "%r is not a non-empty string" % (v,), fix)


def pin(errs, obj, key, path, output=False, adc=False):
    if key not in obj:
        errs.add(path + "." + key, "missing",
                 "add the GPIO number" + (" of an ADC1 pin (32-39)" if adc else ""))
        return
    v = obj[key]
    if not is_int(v):
        errs.add(path + "." + key, "%r is not an int" % (v,),
                 "write the GPIO number without quotes" + (", an ADC1 pin (32-39)" if adc else ""))
        return
    if adc and v not in ADC1_PINS:
        errs.add(path + "." + key, "GPIO%d is not an ADC1 pin" % v,
                 "use an ADC1 pin (32-39): ADC2 cannot be read while Wi-Fi is on")
    elif not 0 <= v <= 39 or v in MISSING_PINS:
        errs.add(path + "." + key, "GPIO%d does not exist on the ESP32" % v, "use a GPIO from 0 to 39")
    elif v in FLASH_PINS:
        errs.add(path + "." + key, "GPIO%d is wired to the SPI flash" % v, "use another GPIO")
    elif output and v in INPUT_ONLY_PINS:
        errs.add(path + "." + key, "GPIO%d is input only and cannot drive %s" % (v, key),
                 "use an output-capable GPIO (not 34-39)")


def distance_range(errs, s, path):
    """empty_mm / full_mm of a distance sensor over a bin (full is nearer)."""
    num(errs, s, "samples", path, 1, 25, integer=True, required=False)
    num(errs, s, "empty_mm", path, 20, 4000)
    num(errs, s, "full_mm", path, 0, 4000)
    e, f = s.get("empty_mm"), s.get("full_mm")
    if is_num(e) and is_num(f) and f >= e:
        errs.add(path + ".full_mm", "full_mm (%s) is not below empty_mm (%s)" % (f, e),
                 "measure the distance to the bottom (empty) and to the full mark")
