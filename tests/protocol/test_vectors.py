"""Every protocol v1 vector through the gateway's parser, and the JSON Schema in agreement."""

import json

import jsonschema
import pytest

from boucle.protocol import schema, vectors
from gateway.parse import Rejected, Signing, parse_telemetry

DOC = vectors()
CONTEXT = DOC["context"]
SIGNING = Signing({d: bytes.fromhex(k) for d, k in CONTEXT["signing"]["keys"].items()},
                  frozenset(CONTEXT["signing"]["required"]))
SCHEMA_ERRORS = {"schema", "out_of_bounds"}  # what the JSON Schema alone must also refuse


def raw_bytes(vector) -> bytes:
    if "raw" in vector:
        return vector["raw"].encode("utf-8")
    return json.dumps(vector["payload"], separators=(",", ":")).encode()


def parse(vector):
    return parse_telemetry(
        vector.get("topic_device", CONTEXT["topic_device"]), raw_bytes(vector),
        known_devices=CONTEXT["devices"], now=CONTEXT["now"], max_future_skew_s=CONTEXT["max_future_skew_s"],
        retained=vector.get("retain", False), signing=SIGNING,
    )


@pytest.mark.parametrize("vector", DOC["vectors"], ids=[v["name"] for v in DOC["vectors"]])
def test_parser_gives_the_expected_outcome(vector):
    result = parse(vector)
    if vector["valid"]:
        assert not isinstance(result, Rejected), result
        payload = vector["payload"]
        assert [(r.seq, r.ts) for r in result] == [(x["seq"], x["ts"]) for x in payload["readings"]]
        assert all(r.device == payload["device"] and r.boot == payload["boot"] for r in result)
        if "raw" in vector:
            assert json.loads(vector["raw"]) == payload
        for reading, item in zip(result, payload["readings"]):
            assert reading.values == {k: v for k, v in item.items() if k not in ("seq", "ts")}
    else:
        assert isinstance(result, Rejected), f"{vector['name']} was accepted"
        assert result.error == vector["error"]
        if "path" in vector:
            assert result.path == vector["path"]
        assert result.message


@pytest.mark.parametrize("vector", [v for v in DOC["vectors"] if "payload" in v], ids=lambda v: v["name"])
def test_json_schema_agrees(vector):
    validator = jsonschema.Draft202012Validator(schema())
    errors = list(validator.iter_errors(vector["payload"]))
    if vector["valid"]:
        assert errors == []
    elif vector["error"] in SCHEMA_ERRORS:
        assert errors, f"the JSON Schema accepts {vector['name']}"


def test_every_error_code_has_a_vector():
    codes = {v["error"] for v in DOC["vectors"] if not v["valid"]}
    assert codes >= {"not_json", "schema", "not_finite", "out_of_bounds", "seq_order", "unknown_device",
                     "topic_mismatch", "future_timestamp", "too_large", "too_deep", "retained", "bad_signature"}


def test_a_signed_payload_without_signature_checks_is_refused_as_schema():
    """A gateway that checks no signature (signing=None, as before revision 1.1) takes the
    signature for an unknown field: dead-lettered, never stored as if it had been checked."""
    signed = next(v for v in DOC["vectors"] if v["name"] == "signed")
    result = parse_telemetry(signed["topic_device"], signed["raw"].encode(), known_devices=None, now=CONTEXT["now"])
    assert isinstance(result, Rejected) and (result.error, result.path) == ("schema", "sig")


def test_the_gateways_hmac_is_rfc_4231s():
    import hashlib
    import hmac
    from importlib import resources

    from gateway.parse import hmac_sha256_hex

    doc = json.loads(resources.files("boucle.protocol").joinpath("v1", "hmac-sha256-rfc4231.json").read_text())
    for case in doc["cases"]:
        key, data = bytes.fromhex(case["key"]), bytes.fromhex(case["data"])
        got = hmac_sha256_hex(key, data).decode()
        assert got.startswith(case["hmac_sha256"]) and got == hmac.new(key, data, hashlib.sha256).hexdigest()
        assert hmac_sha256_hex(key, data + b"!") != got.encode()  # the cached keyed HMAC is copied, not used up


def test_the_signature_is_compared_over_the_exact_bytes():
    """Reordering the fields gives the same JSON document but other bytes: refused."""
    signed = next(v for v in DOC["vectors"] if v["name"] == "signed")
    raw = signed["raw"].replace('"v":1,"device":"ecully-fablab-signed"', '"device":"ecully-fablab-signed","v":1')
    assert json.loads(raw) == json.loads(signed["raw"])
    result = parse_telemetry(signed["topic_device"], raw.encode(), known_devices=None, now=CONTEXT["now"],
                             signing=SIGNING)
    assert isinstance(result, Rejected) and result.error == "bad_signature"


def test_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(schema())


def test_the_schema_file_follows_the_sensor_descriptors():
    """The reading fields of the normative schema are the device kinds' fields (boucle_fw.kinds),
    with their types, bounds and descriptions; boucle.protocol.write_schema() rewrites it."""
    from boucle.protocol import schema, schema_from_descriptors

    assert schema() == schema_from_descriptors()
    props = schema()["$defs"]["reading"]["properties"]
    assert props["water_l"] == {"type": "integer", "minimum": 0, "maximum": 1000000000000,
                                "description": "Cumulative water counter, L."}


def test_the_normative_doc_lists_every_field_with_its_bounds():
    """docs/protocol.md's reading table names every field of the descriptors, in wire order."""
    import re
    from pathlib import Path

    from boucle.protocol import MEASUREMENT_FIELDS

    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text("utf-8")
    listed = re.findall(r"^\| `(\w+)` \| (?:int|number) \|", doc, flags=re.MULTILINE)
    assert [f for f in listed if f not in ("seq", "ts")] == list(MEASUREMENT_FIELDS)
