# Device configuration: one JSON file on the board (/config.json), validated at boot.
#
# Runs unchanged on MicroPython (boot-time check, message on the REPL) and on CPython
# (the workshop tool builds and checks configs with make_config/validate).
# No typing, no dataclasses, no f-strings: MicroPython compatibility.

CONFIG_PATH = "/config.json"

# ESP32 ADC1 channels. ADC2 (GPIO 0, 2, 4, 12-15, 25-27) cannot be read while Wi-Fi is on.
ADC1_PINS = (32, 33, 34, 35, 36, 37, 38, 39)
# GPIO 34-39 are input only; 6-11 are wired to the SPI flash; 20, 24, 28-31 do not exist.
INPUT_ONLY_PINS = (34, 35, 36, 37, 38, 39)
FLASH_PINS = (6, 7, 8, 9, 10, 11)
MISSING_PINS = (20, 24, 28, 29, 30, 31)

SENSOR_TYPES = ("pzem", "ct", "pulse", "hx711", "hcsr04", "vl53l0x")
ENERGY_TYPES = ("pzem", "ct", "pulse")

DEFAULTS = {
    "prefix": "boucle/v1",
    "interval_s": 60,
    "wifi": {"reconnects": 10},
    "mqtt": {"port": 8883, "keepalive_s": 60, "timeout_s": 10, "ca": None},
    "ntp": {"host": "pool.ntp.org", "resync_s": 3600},
    "buffer": {"capacity": 2000, "ram": 64, "segment": 32},
    "energy": {"persist_wh": 100, "persist_s": 900},
    "deep_sleep": {"enabled": False, "publish_every": 10},
    "health_every": 10,
    "ota": {"max_boots": 3},
    "ha_discovery": False,
    "sensors": [],
}

# Named sensor profiles for the workshop tool: device kind, sensors with default pins
# and calibration, and top-level overrides (deep sleep for battery bins).
PROFILES = {
    "energy-pzem": {
        "kind": "energy",
        "description": "PZEM-004T v3 meter on UART2 (Modbus-RTU, address 1)",
        "sensors": [
            {"type": "pzem", "uart": 2, "tx": 17, "rx": 16, "addresses": [1]},
        ],
    },
    "energy-ct": {
        "kind": "energy",
        "description": "SCT-013-030 CT clamp (30 A / 1 V) on GPIO34 (ADC1), mains voltage assumed",
        "sensors": [
            {
                "type": "ct", "pin": 34, "mains_hz": 50, "cycles": 10, "voltage_v": 230.0,
                "power_factor": 1.0, "noise_a": 0.05,
                # two points (ADC RMS counts, amps): 1 V RMS at 11 dB attenuation ~ 1241 counts
                "calibration": [[0, 0.0], [1241, 30.0]],
            },
        ],
    },
    "energy-pulse": {
        "kind": "energy",
        "description": "S0 pulse output of a DIN-rail meter on GPIO27, 1000 pulses/kWh",
        "sensors": [
            {"type": "pulse", "pin": 27, "pulses_per_kwh": 1000, "debounce_ms": 20},
        ],
    },
    "waste-scale": {
        "kind": "waste",
        "description": "Bin on a load cell through an HX711 (DOUT GPIO19, SCK GPIO18)",
        "sensors": [
            {
                "type": "hx711", "dout": 19, "sck": 18, "samples": 9,
                "scale": 420.0, "zero_track_g": 20,
            },
        ],
    },
    "waste-ultrasonic": {
        "kind": "waste",
        "description": "Bin fill level by HC-SR04 (TRIG GPIO5, ECHO GPIO23 via divider), battery",
        "sensors": [
            {
                "type": "hcsr04", "trigger": 5, "echo": 23, "samples": 5,
                "empty_mm": 1000, "full_mm": 100, "temp_c": 15.0,
            },
        ],
        "overrides": {"interval_s": 900, "deep_sleep": {"enabled": True, "publish_every": 4}},
    },
}


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return (isinstance(v, (int, float))) and not isinstance(v, bool)


def _device_id_ok(s):
    if not isinstance(s, str) or not 3 <= len(s) <= 48:
        return False
    allowed = "abcdefghijklmnopqrstuvwxyz0123456789_-"
    if s[0] not in "abcdefghijklmnopqrstuvwxyz0123456789":
        return False
    for c in s:
        if c not in allowed:
            return False
    return True


class _Errors:
    def __init__(self):
        self.items = []

    def add(self, path, problem, fix):
        self.items.append(path + ": " + problem + " — " + fix)


def _num(errs, obj, key, path, lo, hi, integer=False, required=True):
    if key not in obj:
        if required:
            errs.add(path + "." + key, "missing", "add it (a number from %s to %s)" % (lo, hi))
        return
    v = obj[key]
    ok = _is_int(v) if integer else _is_num(v)
    if not ok:
        errs.add(path + "." + key, "%r is not %s" % (v, "an int" if integer else "a number"),
                 "write a number from %s to %s without quotes" % (lo, hi))
    elif not lo <= v <= hi:
        errs.add(path + "." + key, "%r is out of range" % (v,), "use a value from %s to %s" % (lo, hi))


def _str(errs, obj, key, path, fix, required=True, empty_ok=False):
    if key not in obj:
        if required:
            errs.add(path + "." + key, "missing", fix)
        return
    v = obj[key]
    if not isinstance(v, str) or (not empty_ok and not v):
        errs.add(path + "." + key, "%r is not a non-empty string" % (v,), fix)


def _pin(errs, obj, key, path, output=False, adc=False):
    if key not in obj:
        errs.add(path + "." + key, "missing",
                 "add the GPIO number" + (" of an ADC1 pin (32-39)" if adc else ""))
        return
    v = obj[key]
    if not _is_int(v):
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


def _section(errs, cfg, key, fix):
    v = cfg.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        errs.add(key, "%r is not an object" % (v,), fix)
        return {}
    return v


def _sensor(errs, s, path):
    if not isinstance(s, dict):
        errs.add(path, "%r is not an object" % (s,), 'write {"type": ..., pins...}')
        return
    t = s.get("type")
    if t not in SENSOR_TYPES:
        errs.add(path + ".type", "%r is not a known sensor type" % (t,),
                 "use one of " + ", ".join(SENSOR_TYPES))
        return
    if t == "pzem":
        _num(errs, s, "uart", path, 1, 2, integer=True)
        _pin(errs, s, "tx", path, output=True)
        _pin(errs, s, "rx", path)
        addrs = s.get("addresses", [1])
        if not isinstance(addrs, list) or not addrs:
            errs.add(path + ".addresses", "%r is not a non-empty list" % (addrs,),
                     "list the Modbus addresses of the meters on the bus, e.g. [1, 2]")
        else:
            seen = []
            for i, a in enumerate(addrs):
                if not _is_int(a) or not 1 <= a <= 247:
                    errs.add("%s.addresses[%d]" % (path, i), "%r is not a Modbus address" % (a,),
                             "use an int from 1 to 247 (each meter set to its own address)")
                elif a in seen:
                    errs.add("%s.addresses[%d]" % (path, i), "address %d is repeated" % a,
                             "give each meter on the bus its own address")
                else:
                    seen.append(a)
    elif t == "ct":
        _pin(errs, s, "pin", path, adc=True)
        _num(errs, s, "mains_hz", path, 45, 65)
        _num(errs, s, "cycles", path, 1, 100, integer=True, required=False)
        _num(errs, s, "voltage_v", path, 90, 260)
        _num(errs, s, "power_factor", path, 0.1, 1.0, required=False)
        _num(errs, s, "noise_a", path, 0, 10, required=False)
        cal = s.get("calibration")
        ok = isinstance(cal, list) and len(cal) == 2
        if ok:
            for p in cal:
                if not (isinstance(p, list) and len(p) == 2 and _is_num(p[0]) and _is_num(p[1])):
                    ok = False
        if not ok:
            errs.add(path + ".calibration", "%r is not two [counts, amps] points" % (cal,),
                     "write [[counts1, amps1], [counts2, amps2]] from two reference loads")
        elif cal[0][0] == cal[1][0]:
            errs.add(path + ".calibration", "both points have the same counts",
                     "measure two different loads (e.g. 0 A and a known heater)")
    elif t == "pulse":
        _pin(errs, s, "pin", path)
        _num(errs, s, "pulses_per_kwh", path, 1, 100000, integer=True)
        _num(errs, s, "debounce_ms", path, 0, 1000, integer=True, required=False)
    elif t == "hx711":
        _pin(errs, s, "dout", path)
        _pin(errs, s, "sck", path, output=True)
        _num(errs, s, "samples", path, 1, 50, integer=True, required=False)
        _num(errs, s, "scale", path, -1e7, 1e7)
        if _is_num(s.get("scale")) and s.get("scale") == 0:
            errs.add(path + ".scale", "0 counts per gram", "calibrate with a known weight")
        _num(errs, s, "zero_track_g", path, 0, 1000, required=False)
    elif t in ("hcsr04", "vl53l0x"):
        if t == "hcsr04":
            _pin(errs, s, "trigger", path, output=True)
            _pin(errs, s, "echo", path)
            _num(errs, s, "temp_c", path, -40, 85, required=False)
        else:
            _pin(errs, s, "sda", path, output=True)
            _pin(errs, s, "scl", path, output=True)
            _num(errs, s, "address", path, 8, 119, integer=True, required=False)
        _num(errs, s, "samples", path, 1, 25, integer=True, required=False)
        _num(errs, s, "empty_mm", path, 20, 4000)
        _num(errs, s, "full_mm", path, 0, 4000)
        e, f = s.get("empty_mm"), s.get("full_mm")
        if _is_num(e) and _is_num(f) and f >= e:
            errs.add(path + ".full_mm", "full_mm (%s) is not below empty_mm (%s)" % (f, e),
                     "measure the distance to the bottom (empty) and to the full mark")


def validate(cfg):
    """Problems in a config dict, one string each ("path: problem — fix"); [] when valid."""
    errs = _Errors()
    if not isinstance(cfg, dict):
        errs.add("(top)", "the config is not a JSON object", "start the file with {")
        return errs.items
    if not _device_id_ok(cfg.get("device_id")):
        errs.add("device_id", "%r is not a device id" % (cfg.get("device_id"),),
                 "use 3-48 characters a-z 0-9 _ -, starting with a letter or digit")
    if "prefix" in cfg:
        p = cfg["prefix"]
        if not isinstance(p, str) or not p or p.startswith("/") or p.endswith("/") or "#" in p or "+" in p:
            errs.add("prefix", "%r is not a topic prefix" % (p,), 'use e.g. "boucle/v1" (no wildcards)')
    _num(errs, cfg, "interval_s", "(top)", 1, 86400, integer=True, required=False)
    _num(errs, cfg, "health_every", "(top)", 1, 10000, integer=True, required=False)

    wifi = _section(errs, cfg, "wifi", '{"ssid": ..., "password": ...}')
    if "wifi" not in cfg:
        errs.add("wifi", "missing", 'add "wifi": {"ssid": ..., "password": ...}')
    _str(errs, wifi, "ssid", "wifi", "write the network name")
    _str(errs, wifi, "password", "wifi", "write the Wi-Fi password (may be empty for open networks)",
         empty_ok=True)
    _num(errs, wifi, "reconnects", "wifi", 1, 1000, integer=True, required=False)

    mqtt = _section(errs, cfg, "mqtt", '{"host": ..., "port": ...}')
    if "mqtt" not in cfg:
        errs.add("mqtt", "missing", 'add "mqtt": {"host": ..., "port": ..., "username": ...}')
    _str(errs, mqtt, "host", "mqtt", "write the broker host name or IP")
    _num(errs, mqtt, "port", "mqtt", 1, 65535, integer=True, required=False)
    _str(errs, mqtt, "username", "mqtt", "use the device id as MQTT user name", required=False)
    _str(errs, mqtt, "password", "mqtt", "write the device's MQTT password", required=False,
         empty_ok=True)
    if mqtt.get("username") is not None and not isinstance(mqtt.get("password"), str):
        errs.add("mqtt.password", "missing while mqtt.username is set",
                 "write the device's MQTT password (the broker refuses a user without one)")
    if "username" in mqtt and mqtt.get("username") != cfg.get("device_id"):
        errs.add("mqtt.username", "%r differs from device_id" % (mqtt.get("username"),),
                 "use the device id as MQTT user name: the broker ACL allows only its own topics")
    _num(errs, mqtt, "keepalive_s", "mqtt", 10, 3600, integer=True, required=False)
    _num(errs, mqtt, "timeout_s", "mqtt", 1, 120, required=False)
    ca = mqtt.get("ca")
    if ca is not None and (not isinstance(ca, str) or "-----BEGIN CERTIFICATE-----" not in ca):
        errs.add("mqtt.ca", "not a PEM certificate", "paste the broker CA (-----BEGIN CERTIFICATE-----...) or null for plain MQTT")

    ntp = _section(errs, cfg, "ntp", '{"host": "pool.ntp.org"}')
    _str(errs, ntp, "host", "ntp", "write an NTP server name", required=False)
    _num(errs, ntp, "resync_s", "ntp", 60, 604800, integer=True, required=False)

    buf = _section(errs, cfg, "buffer", '{"capacity": 2000}')
    _num(errs, buf, "capacity", "buffer", 10, 100000, integer=True, required=False)
    _num(errs, buf, "ram", "buffer", 4, 1000, integer=True, required=False)
    _num(errs, buf, "segment", "buffer", 1, 200, integer=True, required=False)

    en = _section(errs, cfg, "energy", '{"persist_wh": 10}')
    _num(errs, en, "persist_wh", "energy", 1, 100000, integer=True, required=False)
    _num(errs, en, "persist_s", "energy", 60, 86400, integer=True, required=False)

    ds = _section(errs, cfg, "deep_sleep", '{"enabled": false}')
    if "enabled" in ds and not isinstance(ds["enabled"], bool):
        errs.add("deep_sleep.enabled", "%r is not true/false" % (ds["enabled"],), "write true or false")
    _num(errs, ds, "publish_every", "deep_sleep", 1, 1000, integer=True, required=False)

    ota = _section(errs, cfg, "ota", '{"max_boots": 3}')
    _num(errs, ota, "max_boots", "ota", 1, 20, integer=True, required=False)
    if "ha_discovery" in cfg and not isinstance(cfg["ha_discovery"], bool):
        errs.add("ha_discovery", "%r is not true/false" % (cfg["ha_discovery"],), "write true or false")

    sensors = cfg.get("sensors")
    if not isinstance(sensors, list) or not sensors:
        errs.add("sensors", "%r is not a non-empty list" % (sensors,),
                 "list the sensors, e.g. from a profile: " + ", ".join(sorted(PROFILES)))
    else:
        for i, s in enumerate(sensors):
            _sensor(errs, s, "sensors[%d]" % i)
        kinds = []
        for s in sensors:
            if isinstance(s, dict) and s.get("type") in SENSOR_TYPES:
                kinds.append("energy" if s["type"] in ENERGY_TYPES else "waste")
        if "energy" in kinds and "waste" in kinds:
            errs.add("sensors", "mixes energy and waste sensors",
                     "use one device (and one device id) per kind")
    return errs.items


def merged(base, over):
    """A copy of dict `base` with `over` merged in (nested dicts merged, other values replaced)."""
    out = {}
    for k in base:
        out[k] = base[k]
    for k in over:
        if isinstance(out.get(k), dict) and isinstance(over[k], dict):
            out[k] = merged(out[k], over[k])
        else:
            out[k] = over[k]
    return out


def with_defaults(cfg):
    """The config with every optional setting filled from DEFAULTS."""
    return merged(DEFAULTS, cfg)


def make_config(device_id, wifi_ssid, wifi_password, broker_host, broker_port, mqtt_username,
                mqtt_password, ca_pem, profile, **overrides):
    """A complete, valid config for one device from a named profile; ValueError if invalid."""
    if profile not in PROFILES:
        raise ValueError("unknown profile %r: use one of %s" % (profile, ", ".join(sorted(PROFILES))))
    prof = PROFILES[profile]
    cfg = {
        "device_id": device_id,
        "wifi": {"ssid": wifi_ssid, "password": wifi_password},
        "mqtt": {"host": broker_host, "port": broker_port, "username": mqtt_username,
                 "password": mqtt_password, "ca": ca_pem},
        "sensors": [merged(s, {}) for s in prof["sensors"]],
    }
    cfg = with_defaults(cfg)
    cfg = merged(cfg, prof.get("overrides", {}))
    cfg = merged(cfg, overrides)
    errors = validate(cfg)
    if errors:
        raise ValueError("invalid config for %s:\n  %s" % (device_id, "\n  ".join(errors)))
    return cfg


def load(path=CONFIG_PATH):
    """Read and validate the config file; (config with defaults, errors)."""
    import json
    try:
        with open(path) as f:
            cfg = json.load(f)
    except OSError:
        return None, ["%s: not found — copy a config with `mpremote cp config.json :%s`" % (path, path)]
    except ValueError as e:
        return None, ["%s: not valid JSON (%s) — check commas and quotes" % (path, e)]
    errors = validate(cfg)
    return (with_defaults(cfg) if not errors else None), errors
