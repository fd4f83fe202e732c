"""Property tests of the parse stage: any input gives readings or a rejection, never an
exception; anything the firmware encoder produces is accepted as it was meant."""

import json

from boucle_fw.protocol import batches
from hypothesis import given, settings
from hypothesis import strategies as st

from boucle.protocol import FIELDS, MAX_PAYLOAD_BYTES, field_bounds, reading_row
from gateway.parse import Rejected, _fast_rows, _parse, _Reject, parse_rows, parse_telemetry

NOW = 1767225600
BOUNDS = field_bounds()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=9000))
def test_arbitrary_bytes_never_raise(payload):
    result = parse_telemetry("dev-1", payload, known_devices=None, now=NOW)
    assert isinstance(result, (list, Rejected))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["v", "device", "boot", "readings", "x"]), json_values))
def test_arbitrary_json_objects_are_refused_with_a_reason(doc):
    result = parse_telemetry("dev-1", json.dumps(doc).encode(), known_devices=None, now=NOW)
    if isinstance(result, Rejected):
        assert result.error in {"schema", "not_finite", "out_of_bounds", "seq_order", "topic_mismatch",
                                "future_timestamp"}
        assert result.message


def measurement(name, decimals):
    low, high = BOUNDS[name]
    if decimals is None:
        return st.integers(int(low), int(high))
    return st.floats(low, high, allow_nan=False).map(lambda x: round(x, decimals))


readings = st.lists(
    st.fixed_dictionaries({}, optional={name: measurement(name, dec) for name, dec in FIELDS}).filter(bool),
    min_size=1, max_size=400)


@settings(max_examples=150, deadline=None)
@given(readings, st.integers(0, 2**31 - 1), st.integers(0, 1000))
def test_encoded_batches_parse_back(values, boot, first_seq):
    items = [dict(v, seq=first_seq + i, ts=NOW - 3600 + i) for i, v in enumerate(values)]
    seen = []
    for payload, count in batches("dev-1", boot, items):
        result = parse_telemetry("dev-1", payload, known_devices=["dev-1"], now=NOW)
        assert not isinstance(result, Rejected), result
        assert len(result) == count
        seen.extend(result)
    assert [r.seq for r in seen] == [i["seq"] for i in items]
    for r, item in zip(seen, items):
        for name, dec in FIELDS:
            if name in item:
                assert abs(r.values[name] - item[name]) <= (0 if dec is None else 10 ** -dec / 2 + 1e-9)


# The fast path (msgspec) and the checking path (hand-written) must mean the same thing: on
# any payload, the fast path either defers (None) or returns exactly the checking path's rows.
scalars = (st.integers(-2**40, 2**40) | st.floats(-1e12, 1e12) | st.booleans() | st.none()
           | st.sampled_from(["1", "", 1.0, 2**63, -1, 0, 1e400]))


def mostly(valid, other=scalars):
    """`valid` seven times in eight, else something else: most payloads carry one flaw or none."""
    return st.integers(0, 7).flatmap(lambda k: other if k == 0 else valid)


near_readings = st.lists(st.fixed_dictionaries(
    {"seq": mostly(st.integers(0, 5)), "ts": mostly(st.integers(NOW - 1000, NOW + 400))},
    optional={name: mostly(measurement(name, dec)) for name, dec in FIELDS}), min_size=1, max_size=3)
near_docs = st.fixed_dictionaries(
    {"v": mostly(st.just(1), st.sampled_from([2, True, 1.0, "1"])),
     "device": mostly(st.just("dev-1"), st.sampled_from(["Dev-1", "d", "dev-2", 7])),
     "boot": mostly(st.integers(0, 2**31 - 1), st.integers(-2, 2**31 + 2) | st.booleans()),
     "readings": mostly(near_readings, st.just([]) | scalars)},
    optional={"x": scalars})


def _checking_rows(payload):
    try:
        return [reading_row(r) for r in _parse("dev-1", payload, ["dev-1"], NOW, 300, MAX_PAYLOAD_BYTES)]
    except _Reject as exc:
        return exc.rejected


@settings(max_examples=1000, deadline=None)
@given(near_docs)
def test_fast_path_agrees_with_checking_path(doc):
    payload = json.dumps(doc).encode()
    fast = _fast_rows("dev-1", payload, ["dev-1"], NOW + 300)
    checking = _checking_rows(payload)
    if fast is not None:
        assert fast == checking
        assert [tuple(map(type, r)) for r in fast] == [tuple(map(type, r)) for r in checking]
    assert parse_rows("dev-1", payload, known_devices=["dev-1"], now=NOW) == checking


@settings(max_examples=60, deadline=None)
@given(readings, st.integers(0, 2**31 - 1))
def test_fast_path_takes_every_valid_batch(values, boot):
    items = [dict(v, seq=i, ts=NOW - 3600 + i) for i, v in enumerate(values)]
    for payload, _count in batches("dev-1", boot, items):
        assert _fast_rows("dev-1", payload, ["dev-1"], NOW + 300) == _checking_rows(payload)


def dumps_repeating(value, target, key, first):
    """`value` as JSON with `key` given twice in the object `target`: first as `first`, then
    as its own value (json.dumps cannot write a repeated key)."""
    if isinstance(value, dict):
        items = [f"{json.dumps(k)}:{dumps_repeating(v, target, key, first)}" for k, v in value.items()]
        if value is target:
            items.insert(0, f"{json.dumps(key)}:{json.dumps(first)}")
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps_repeating(v, target, key, first) for v in value) + "]"
    return json.dumps(value)


@settings(max_examples=500, deadline=None)
@given(near_docs, st.data())
def test_a_repeated_key_is_refused_on_both_paths(doc, data):
    """msgspec and json both keep a repeated key's last value; the parser refuses the
    payload instead, on the fast path as on the checking path, at the key's path."""
    objects = [("", doc)]
    if isinstance(doc["readings"], list):
        objects += [(f"readings[{i}]", r) for i, r in enumerate(doc["readings"]) if isinstance(r, dict) and r]
    where, target = data.draw(st.sampled_from(objects))
    key = data.draw(st.sampled_from(sorted(target)))
    payload = dumps_repeating(doc, target, key, data.draw(scalars)).encode()
    assert _fast_rows("dev-1", payload, ["dev-1"], NOW + 300) is None
    result = parse_rows("dev-1", payload, known_devices=["dev-1"], now=NOW)
    assert result == _checking_rows(payload)
    if b"Infinity" not in payload:  # not_finite is found while decoding, before any key check
        assert (result.error, result.path) == ("schema", f"{where}.{key}" if where else key), result
