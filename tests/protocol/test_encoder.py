"""The firmware encoder (CPython side): vectors round-trip, batches respect the size limit."""

import json

import pytest
from boucle_fw.protocol import MAX_PAYLOAD_BYTES, SIG_BYTES, batches, encode_batch, encode_reading
from boucle_fw.signing import from_hex

from boucle.protocol import vectors
from gateway.parse import Rejected, parse_telemetry

VALID = [v for v in vectors()["vectors"] if v["valid"]]


@pytest.mark.parametrize("vector", VALID, ids=lambda v: v["name"])
def test_valid_vectors_round_trip(vector):
    p = vector["payload"]
    ctx = vectors()["context"]
    signer = from_hex(vector["key"]) if "sig" in p else None
    payload = encode_batch(p["device"], p["boot"], [encode_reading(r) for r in p["readings"]], signer)
    assert json.loads(payload) == p
    if "raw" in vector:
        assert payload == vector["raw"].encode()
    if signer is None:
        parsed = parse_telemetry(p["device"], payload, known_devices=None, now=ctx["now"])
        assert not isinstance(parsed, Rejected)


def test_signed_batches_count_the_signature_in_the_limit():
    signer = from_hex("ab" * 32)
    readings = [{"seq": i, "ts": 1767225000 + i, "energy_wh": 10**9 + i, "power_w": 12345.6} for i in range(400)]
    plain = list(batches("device-one", 7, readings))
    signed = list(batches("device-one", 7, readings, signer=signer))
    assert all(len(p) <= MAX_PAYLOAD_BYTES for p, _ in signed)
    assert sum(n for _, n in signed) == 400
    first_plain, first_signed = plain[0][0], signed[0][0]
    assert len(first_plain) + SIG_BYTES > MAX_PAYLOAD_BYTES - 100  # the plain batch nearly fills a payload...
    assert signed[0][1] < plain[0][1]  # ...so the signed one takes a reading fewer
    assert first_signed.endswith(b'"}') and b',"sig":"' in first_signed


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
