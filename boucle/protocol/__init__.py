"""Wire protocol v1 (revision 1.1: signed telemetry): the JSON Schema, the test vectors, and the server-side models.

The encoder lives in the firmware (`boucle_fw.protocol`) so that devices and the
simulator produce the very same bytes; this package holds what the servers need.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from boucle_fw import kinds
from boucle_fw.protocol import (
    DEFAULT_PREFIX,
    FIELDS,
    MAX_PAYLOAD_BYTES,
    MAX_READINGS,
    SIG_BYTES,
    SIG_FIELD,
    VERSION,
)

__all__ = [
    "DEFAULT_PREFIX",
    "FIELDS",
    "MAX_PAYLOAD_BYTES",
    "MAX_READINGS",
    "MAX_STATE_BYTES",
    "MAX_STATE_DEPTH",
    "ROW_FIELDS",
    "SIG_BYTES",
    "SIG_FIELD",
    "VERSION",
    "Reading",
    "ReadingRow",
    "reading_row",
    "row_reading",
    "row_values",
    "schema",
    "split_signature",
    "vectors",
]

MAX_STATE_BYTES = 2048
"""A status or health payload's size limit."""
MAX_STATE_DEPTH = 8
"""How deeply a status or health object may nest (they are flat today; the bound keeps a
hostile document from costing recursion wherever it is read back)."""

MEASUREMENT_FIELDS: tuple[str, ...] = tuple(name for name, _ in FIELDS)
INTEGER_FIELDS: frozenset[str] = frozenset(name for name, dec in FIELDS if dec is None)


@dataclass(frozen=True, slots=True)
class Reading:
    """One validated reading. Identity: (device, boot, seq)."""

    device: str
    boot: int
    seq: int
    ts: int
    values: dict[str, float | int]


ReadingRow = tuple
"""A reading as the gateway's hot path carries it: `(device, boot, seq, ts, *measurements)`,
one slot per MEASUREMENT_FIELDS entry, None where absent. Plain tuples cost a fraction of a
Reading to build and bind straight into SQL; `ROW_FIELDS` names the slots."""

ROW_FIELDS: tuple[str, ...] = ("device", "boot", "seq", "ts", *MEASUREMENT_FIELDS)


def reading_row(reading: Reading) -> ReadingRow:
    """A Reading as a row."""
    return (reading.device, reading.boot, reading.seq, reading.ts,
            *(reading.values.get(f) for f in MEASUREMENT_FIELDS))


def row_values(row: ReadingRow) -> dict[str, float | int]:
    """The measurements present in a row, by name."""
    return {f: v for f, v in zip(MEASUREMENT_FIELDS, row[4:]) if v is not None}


def row_reading(row: ReadingRow) -> Reading:
    """A row as a Reading."""
    return Reading(row[0], row[1], row[2], row[3], row_values(row))


_SIG_OPEN = b',"' + SIG_FIELD.encode() + b'":"'
_SIG_HEX = SIG_BYTES - len(_SIG_OPEN) - 2


def split_signature(payload: bytes) -> tuple[bytes, bytes] | None:
    """A signed payload's (signed bytes, signature hex digits), or None when it does not end
    with a signature. The byte rule (docs/protocol.md, "Signatures"): the signed bytes are
    the unsigned payload, and the payload is those bytes with `,"sig":"<64 hex>"` inserted
    before their final `}`."""
    if len(payload) <= SIG_BYTES or not payload.endswith(b'"}') or payload[-SIG_BYTES:-_SIG_HEX - 2] != _SIG_OPEN:
        return None
    return payload[:-SIG_BYTES] + b"}", payload[-_SIG_HEX - 2:-2]


def _load(name: str) -> Any:
    return json.loads(resources.files(__package__).joinpath("v1", name).read_text("utf-8"))


def schema() -> dict[str, Any]:
    """The normative JSON Schema of a telemetry payload."""
    return _load("telemetry.schema.json")


def vectors() -> dict[str, Any]:
    """The shared test vectors: {"context": ..., "vectors": [...]}."""
    return _load("vectors.json")


def field_bounds() -> dict[str, tuple[float, float]]:
    """Bounds of each reading field: seq and ts from the schema, the measurements from the
    device kinds' descriptors (boucle_fw.kinds: the single source the schema follows)."""
    props = schema()["$defs"]["reading"]["properties"]
    return {"seq": (props["seq"]["minimum"], props["seq"]["maximum"]),
            "ts": (props["ts"]["minimum"], props["ts"]["maximum"]),
            **{f[0]: (f[3], f[4]) for f in kinds.fields()}}


def reading_properties() -> dict[str, Any]:
    """The JSON Schema properties of a reading's measurement fields, from the descriptors."""
    return {f[0]: {"type": "integer" if f[1] is None else "number", "minimum": f[3], "maximum": f[4],
                   "description": f[5]} for f in kinds.fields()}


def schema_from_descriptors() -> dict[str, Any]:
    """The telemetry schema as the descriptors make it: the committed file with its reading
    fields replaced (tests/protocol checks the file equals it; write_schema() rewrites it)."""
    doc = schema()
    props = doc["$defs"]["reading"]["properties"]
    doc["$defs"]["reading"]["properties"] = {"seq": props["seq"], "ts": props["ts"], **reading_properties()}
    return doc


def write_schema() -> None:
    """Rewrite v1/telemetry.schema.json from the descriptors (after adding a field)."""
    text = json.dumps(schema_from_descriptors(), indent=2, ensure_ascii=False)
    resources.files(__package__).joinpath("v1", "telemetry.schema.json").write_text(text + "\n", "utf-8")
