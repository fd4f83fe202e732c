# Device configuration: one JSON file on the board (/config.json), validated at boot.
#
# Runs unchanged on MicroPython (boot-time check, message on the REPL) and on CPython
# (the workshop tool builds and checks configs with make_config/validate).
# No typing, no dataclasses, no f-strings: MicroPython compatibility.

from boucle_fw import checks, kinds, sensors

CONFIG_PATH = "/config.json"

_num = checks.num
_str = checks.text

DEFAULTS = {
    "prefix": "boucle/v1",
    "interval_s": 60,
    "wifi": {"reconnects": 10},
    "mqtt": {"port": 8883, "keepalive_s": 60, "timeout_s": 10, "ca": None},
    "ntp": {"host": "pool.ntp.org", "resync_s": 3600},
    "buffer": {"capacity": 2000, "ram": 64, "segment": 32},
    "deep_sleep": {"enabled": False, "publish_every": 10},
    "health_every": 10,
    "ota": {"max_boots": 3},
    "ha_discovery": False,
    "sensors": [],
}
# each counting kind's persistence section: "energy": {"persist_wh": 100, "persist_s": 900}...
for _k in kinds.KINDS:
    _c = kinds.get(_k).COUNTER
    if _c is not None:
        DEFAULTS[_c[1][0]] = {_c[1][1]: _c[1][2], _c[1][3]: _c[1][4]}


def profiles():
    """Named sensor profiles for the workshop tool (every sensor type's, boucle_fw.sensors):
    device kind, sensors with default pins and calibration, top-level overrides."""
    return sensors.profiles()


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


def _hex_key_ok(s):
    if not isinstance(s, str) or len(s) != 64:
        return False
    for c in s:
        if c not in "0123456789abcdef":
            return False
    return True


def _section(errs, cfg, key, fix):
    v = cfg.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        errs.add(key, "%r is not an object" % (v,), fix)
        return {}
    return v


def _sensor(errs, s, path):
    """A sensor entry's type and keys; its kind, or None when the type is unknown."""
    if not isinstance(s, dict):
        errs.add(path, "%r is not an object" % (s,), 'write {"type": ..., pins...}')
        return None
    t = s.get("type")
    if t not in sensors.TYPES:
        errs.add(path + ".type", "%r is not a known sensor type" % (t,),
                 "use one of " + ", ".join(sensors.TYPES))
        return None
    d = sensors.get(t)
    d.check(errs, s, path)
    return d.KIND


def validate(cfg):
    """Problems in a config dict, one string each ("path: problem — fix"); [] when valid."""
    errs = checks.Errors()
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

    key = cfg.get("sign_key")
    if key is not None and not _hex_key_ok(key):
        errs.add("sign_key", "not a device key", "write the 64 hex digits `boucle flash` gave the device, or remove "
                 "the key (the device then publishes unsigned, which its registry entry must allow)")

    ntp = _section(errs, cfg, "ntp", '{"host": "pool.ntp.org"}')
    _str(errs, ntp, "host", "ntp", "write an NTP server name", required=False)
    _num(errs, ntp, "resync_s", "ntp", 60, 604800, integer=True, required=False)

    buf = _section(errs, cfg, "buffer", '{"capacity": 2000}')
    _num(errs, buf, "capacity", "buffer", 10, 100000, integer=True, required=False)
    _num(errs, buf, "ram", "buffer", 4, 1000, integer=True, required=False)
    _num(errs, buf, "segment", "buffer", 1, 200, integer=True, required=False)

    for k in kinds.KINDS:
        c = kinds.get(k).COUNTER
        if c is not None:
            name, units, _u, seconds, _s = c[1]
            sec = _section(errs, cfg, name, '{"%s": %d}' % (units, _u))
            _num(errs, sec, units, name, 1, 100000, integer=True, required=False)
            _num(errs, sec, seconds, name, 60, 86400, integer=True, required=False)

    ds = _section(errs, cfg, "deep_sleep", '{"enabled": false}')
    if "enabled" in ds and not isinstance(ds["enabled"], bool):
        errs.add("deep_sleep.enabled", "%r is not true/false" % (ds["enabled"],), "write true or false")
    _num(errs, ds, "publish_every", "deep_sleep", 1, 1000, integer=True, required=False)

    ota = _section(errs, cfg, "ota", '{"max_boots": 3}')
    _num(errs, ota, "max_boots", "ota", 1, 20, integer=True, required=False)
    if "ha_discovery" in cfg and not isinstance(cfg["ha_discovery"], bool):
        errs.add("ha_discovery", "%r is not true/false" % (cfg["ha_discovery"],), "write true or false")

    sensor_list = cfg.get("sensors")
    if not isinstance(sensor_list, list) or not sensor_list:
        errs.add("sensors", "%r is not a non-empty list" % (sensor_list,),
                 "list the sensors, e.g. from a profile: " + ", ".join(sorted(profiles())))
    else:
        found = []
        for i, s in enumerate(sensor_list):
            k = _sensor(errs, s, "sensors[%d]" % i)
            if k is not None and k not in found:
                found.append(k)
        if len(found) > 1:
            errs.add("sensors", "mixes " + " and ".join(found) + " sensors",
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
    """A complete, valid config for one device from a named profile; ValueError if invalid.
    A `sign_key` override (64 hex digits) makes the device sign its telemetry."""
    catalogue = profiles()
    if profile not in catalogue:
        raise ValueError("unknown profile %r: use one of %s" % (profile, ", ".join(sorted(catalogue))))
    prof = catalogue[profile]
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
