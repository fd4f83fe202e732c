# The shared protocol vectors round-trip through the firmware encoder; runs on CPython
# and on MicroPython.
import json

from boucle_fw import protocol

try:
    from tests.firmware.logic.mpcompat import data_path
except ImportError:
    from mpcompat import data_path

DECIMALS = {}
for _n, _d in protocol.FIELDS:
    DECIMALS[_n] = _d


def _vectors():
    with open(data_path("vectors.json")) as f:
        return [v for v in json.load(f)["vectors"] if "payload" in v and v.get("valid")]


def _same(a, b, field):
    dec = DECIMALS.get(field)
    if dec is None:
        return a == b and isinstance(a, int) == isinstance(b, int)
    return round(a, dec) == round(b, dec)


def test_valid_vectors_round_trip():
    vectors = _vectors()
    assert len(vectors) >= 5
    for v in vectors:
        p = v["payload"]
        out = list(protocol.batches(p["device"], p["boot"], p["readings"]))
        assert len(out) == 1, v["name"]
        payload, count = out[0]
        assert count == len(p["readings"])
        got = json.loads(payload)
        assert got["v"] == p["v"] and got["device"] == p["device"] and got["boot"] == p["boot"]
        assert len(got["readings"]) == len(p["readings"])
        for want, have in zip(p["readings"], got["readings"]):
            assert sorted(want.keys()) == sorted(have.keys()), v["name"]
            for k in want:
                assert _same(want[k], have[k], k), (v["name"], k, want[k], have[k])


def test_single_precision_floats_do_not_leak_digits():
    r = {"seq": 1, "ts": 1767225000, "voltage_v": 230.1000061, "power_w": -0.04, "energy_wh": 7}
    text = protocol.encode_reading(r)
    assert '"voltage_v":230.1' in text and "230.10" not in text
    assert '"power_w":0.0' in text  # -0.0 spelled once


def test_batches_stay_under_the_limit_and_keep_order():
    readings = []
    for i in range(450):
        readings.append({"seq": i, "ts": 1767225000 + i, "energy_wh": 1834512 + i,
                         "power_w": 2310.5, "voltage_v": 231.2, "current_a": 10.412,
                         "power_factor": 0.97})
    seqs = []
    total = 0
    for payload, count in protocol.batches("ecully-fablab-grid", 3, readings):
        assert len(payload) <= protocol.MAX_PAYLOAD_BYTES
        body = json.loads(payload)
        assert len(body["readings"]) == count <= protocol.MAX_READINGS
        seqs.extend(r["seq"] for r in body["readings"])
        total += count
    assert total == 450 and seqs == list(range(450))


def test_status_and_health():
    assert json.loads(protocol.encode_status(False)) == {"v": 1, "online": False}
    h = json.loads(protocol.encode_health(3, 3600, 81234, -67, 12, 4, "watchdog", "0.1.0",
                                          1767225000, {"sensor_errors": 2}))
    assert h == {"v": 1, "boot": 3, "uptime_s": 3600, "heap_free": 81234, "rssi": -67,
                 "buffer_depth": 12, "dropped": 4, "reset_cause": "watchdog", "fw": "0.1.0",
                 "ts": 1767225000, "sensor_errors": 2}
