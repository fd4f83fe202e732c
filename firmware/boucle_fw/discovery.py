# Home Assistant MQTT discovery (off by default): one retained config message per field.
#
# The state is the device's own telemetry topic; each sensor takes the last reading of
# the batch. Runs on CPython and MicroPython.

import json

from boucle_fw import kinds, sensors


def fields_of(sensor_types):
    """The reading fields these sensor types produce, each once, in their order."""
    out = []
    for t in sensor_types:
        for f in sensors.get(t).FIELDS:
            if f not in out:
                out.append(f)
    return out


def messages(device_id, telemetry_topic, status_topic, sensor_types, fw, prefix="homeassistant"):
    """[(topic, payload bytes)] to publish retained once connected."""
    out = []
    for f in fields_of(sensor_types):
        spec = kinds.field(f)
        unit, dev_class, state_class = spec[2], spec[6], spec[7]
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
