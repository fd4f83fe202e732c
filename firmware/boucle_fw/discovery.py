# Home Assistant MQTT discovery (off by default): one retained config message per field.
#
# The state is the device's own telemetry topic; each sensor takes the last reading of
# the batch. Runs on CPython and MicroPython.

import json

# field -> (device_class, unit, state_class)
_HA = {
    "energy_wh": ("energy", "Wh", "total_increasing"),
    "power_w": ("power", "W", "measurement"),
    "voltage_v": ("voltage", "V", "measurement"),
    "current_a": ("current", "A", "measurement"),
    "power_factor": ("power_factor", None, "measurement"),
    "weight_g": ("weight", "g", "measurement"),
    "fill_pct": (None, "%", "measurement"),
    "temp_c": ("temperature", "\u00b0C", "measurement"),
}

FIELDS_BY_SENSOR = {
    "pzem": ("energy_wh", "power_w", "voltage_v", "current_a", "power_factor"),
    "ct": ("energy_wh", "power_w", "current_a"),
    "pulse": ("energy_wh", "power_w"),
    "hx711": ("weight_g",),
    "hcsr04": ("fill_pct",),
    "vl53l0x": ("fill_pct",),
}


def messages(device_id, telemetry_topic, status_topic, sensor_types, fw, prefix="homeassistant"):
    """[(topic, payload bytes)] to publish retained once connected."""
    out = []
    fields = []
    for t in sensor_types:
        for f in FIELDS_BY_SENSOR.get(t, ()):
            if f not in fields:
                fields.append(f)
    for f in fields:
        dev_class, unit, state_class = _HA[f]
        uid = device_id + "_" + f
        body = {
            "name": f,
            "unique_id": uid,
            "object_id": uid,
            "state_topic": telemetry_topic,
            "value_template": "{{ value_json.readings[-1]." + f + " | default(none) }}",
            "availability_topic": status_topic,
            "availability_template": "{{ 'online' if value_json.online else 'offline' }}",
            "state_class": state_class,
            "device": {"identifiers": [device_id], "name": device_id, "manufacturer": "Boucle",
                       "sw_version": fw},
        }
        if dev_class:
            body["device_class"] = dev_class
        if unit:
            body["unit_of_measurement"] = unit
        out.append((prefix + "/sensor/" + uid + "/config", json.dumps(body).encode()))
    return out
