"""Wire protocol v1: the JSON Schema, the test vectors, and the server-side models.

The encoder lives in the firmware (`boucle_fw.protocol`) so that devices and the
simulator produce the very same bytes; this package holds what the servers need.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from boucle_fw.protocol import DEFAULT_PREFIX, FIELDS, MAX_PAYLOAD_BYTES, MAX_READINGS, VERSION

__all__ = [
    "DEFAULT_PREFIX", "FIELDS", "MAX_PAYLOAD_BYTES", "MAX_READINGS", "VERSION",
    "Reading", "schema", "vectors",
]

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


def _load(name: str) -> Any:
    return json.loads(resources.files(__package__).joinpath("v1", name).read_text("utf-8"))


def schema() -> dict[str, Any]:
    """The normative JSON Schema of a telemetry payload."""
    return _load("telemetry.schema.json")


def vectors() -> dict[str, Any]:
    """The shared test vectors: {"context": ..., "vectors": [...]}."""
    return _load("vectors.json")


def field_bounds() -> dict[str, tuple[float, float]]:
    """Physical bounds of each reading field, read from the schema (single source)."""
    props = schema()["$defs"]["reading"]["properties"]
    return {name: (p["minimum"], p["maximum"]) for name, p in props.items()}
