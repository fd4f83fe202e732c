# The firmware's HMAC-SHA256 (boucle_fw.signing) against RFC 4231's test cases, and the
# signed protocol vector made byte for byte by the firmware encoder; runs on CPython
# (where the standard hmac module checks the vector file too) and on MicroPython.
import json

from boucle_fw import protocol, signing

try:
    from tests.firmware.logic.mpcompat import data_path
except ImportError:
    from mpcompat import data_path

try:
    import hmac
except ImportError:  # MicroPython has none: the vector file is the reference there
    hmac = None


def _cases():
    with open(data_path("hmac-sha256-rfc4231.json")) as f:
        return json.load(f)["cases"]


def _unhex(text):
    return bytes(int(text[i:i + 2], 16) for i in range(0, len(text), 2))


def test_rfc4231_cases():
    cases = _cases()
    assert len(cases) == 7
    for case in cases:
        key, data, want = _unhex(case["key"]), _unhex(case["data"]), case["hmac_sha256"]
        got = signing.Signer(key).hexmac(data).decode()
        assert got[:len(want)] == want, (case["case"], got)
        if hmac is not None:
            import hashlib
            assert hmac.new(key, data, hashlib.sha256).hexdigest()[:len(want)] == want, case["case"]


def test_one_signer_signs_many_messages():
    """The padded key blocks are reused: signing twice, or in parts, gives the same MAC."""
    signer = signing.from_hex("0b" * 32)
    once = signer.mac(b"Hi There, and more")
    assert signer.mac(b"Hi There, and more") == once
    h = signer.start()
    h.update(b"Hi There")
    h.update(b", and more")
    assert signer.finish(h) == once
    assert signer.mac(b"Hi There, and less") != once
    assert signing.from_hex("") is None and signing.from_hex(None) is None


def test_the_firmware_makes_the_signed_vector_byte_for_byte():
    with open(data_path("vectors.json")) as f:
        doc = json.load(f)
    vector = next(v for v in doc["vectors"] if v["name"] == "signed")
    p = vector["payload"]
    signer = signing.from_hex(vector["key"])
    assert vector["key"] == doc["context"]["signing"]["keys"][p["device"]]
    readings = [protocol.encode_reading(r) for r in p["readings"]]
    assert protocol.encode_batch(p["device"], p["boot"], readings, signer) == vector["raw"].encode()
    out = list(protocol.batches(p["device"], p["boot"], p["readings"], signer=signer))
    assert out == [(vector["raw"].encode(), len(p["readings"]))]
