"""Small registries and stores for indicator tests: real SQLite, real registry models."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from boucle.protocol import Reading
from boucle.registry import Registry
from boucle.storage.sqlite import SQLiteStore

BASE_TOML = """
[waste_streams]
residual = "incineration_energy_recovery"
packaging = "recycling"
biowaste = "composting"
bulky = "landfill"
textile = "reuse"
wood = "recycling"

[[territories]]
id = "town"
name = "Town"
kind = "commune"
population = 1000
centroid = [45.77, 4.77]

[[territories]]
id = "zone"
name = "Zone"
kind = "industrial_zone"
population = 500
centroid = [45.70, 4.70]
"""


def registry(extra: str) -> Registry:
    """A registry: two territories (town: 1000 inhabitants, zone: 500) plus `extra` TOML."""
    return Registry.model_validate(tomllib.loads(BASE_TOML + extra))


def utc(text: str) -> int:
    """UTC seconds of an ISO time written without zone ('2026-03-29T00:00')."""
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("UTC")).timestamp())


def paris(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Europe/Paris")).timestamp())


def write(store: SQLiteStore, device: str, rows: Iterable[tuple[int, dict]], boot: int = 1) -> None:
    """Write (ts, values) rows of one device as readings with increasing seq."""
    readings = [Reading(device, boot, seq, ts, values) for seq, (ts, values) in enumerate(rows)]
    store.write_readings(readings, received=0.0)


def counter(store: SQLiteStore, device: str, start: int, watts: float, n: int, step: int = 60,
            first_wh: int = 0, boot: int = 1) -> int:
    """n readings of a counter at constant power from `start`, every `step` s; returns last Wh."""
    rows = [(start + i * step, {"energy_wh": first_wh + round(watts * i * step / 3600)}) for i in range(n)]
    write(store, device, rows, boot)
    return rows[-1][1]["energy_wh"]
