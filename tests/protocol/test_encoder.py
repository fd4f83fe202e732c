"""The firmware encoder (CPython side): vectors round-trip, batches respect the size limit."""

import json

import pytest
from boucle_fw.protocol import MAX_PAYLOAD_BYTES, batches, encode_batch, encode_reading

from boucle.protocol import vectors
from gateway.parse import Rejected, parse_telemetry

VALID = [v for v in vectors()["vectors"] if v["valid"]]


@pytest.mark.parametrize("vector", VALID, ids=lambda v: v["name"])
def test_valid_vectors_round_trip(vector):
    p = vector["payload"]
    payload = encode_batch(p["device"], p["boot"], [encode_reading(r) for r in p["readings"]])
    assert json.loads(payload) == p
    ctx = vectors()["context"]
    parsed = parse_telemetry(p["device"], payload, known_devices=None, now=ctx["now"])
    assert not isinstance(parsed, Rejected)


def test_batches_split_under_the_limit_and_keep_every_reading():
    readings = [{"seq": i, "ts": 1767225000 + i, "energy_wh": 10**9 + i, "power_w": 12345.6,
                 "voltage_v": 231.4, "current_a": 53.123, "power_factor": 0.97} for i in range(1000)]
    out = list(batches("device-one", 7, readings))
    assert sum(n for _, n in out) == 1000
    assert all(len(p) <= MAX_PAYLOAD_BYTES for p, _ in out)
    seqs = [r["seq"] for p, _ in out for r in json.loads(p)["readings"]]
    assert seqs == list(range(1000))


def test_floats_have_fixed_decimals():
    text = encode_reading({"seq": 1, "ts": 2, "power_w": 230.10000610351562, "power_factor": -0.0001})
    assert text == '{"seq":1,"ts":2,"power_w":230.1,"power_factor":0.00}'
