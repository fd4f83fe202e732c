"""Reference values, emission factors and thresholds: configuration, never code constants.

Defaults in cloud/references.toml; a deployment overrides any key with its own TOML file
(env BOUCLE_REFERENCES or an explicit path), merged over the defaults.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULTS = Path(__file__).resolve().parent.parent / "references.toml"


class ReferencesError(Exception):
    """A references file that cannot be used."""


@dataclass(frozen=True)
class References:
    """Parsed references: benchmarks per indicator, emission factors, thresholds."""

    data: dict[str, Any]

    def benchmark(self, indicator_id: str) -> dict | None:
        """The reference of an indicator (limit, target, source...), or None (a table
        with only a direction is no reference)."""
        found = self.data.get("indicators", {}).get(indicator_id)
        return dict(found) if found and set(found) - {"direction"} else None

    def direction(self, indicator_id: str) -> str | None:
        """Which way is better for an indicator: "lower", "higher", or None (not said)."""
        found = self.data.get("indicators", {}).get(indicator_id) or {}
        return found.get("direction")

    @property
    def grid_factor(self) -> dict:
        return dict(self.data["grid_factor"])

    def route_factor(self, route: str) -> dict:
        try:
            return dict(self.data["route_factors"][route])
        except KeyError:
            raise ReferencesError(
                f"no emission factor for treatment route {route!r}: add [route_factors.{route}] "
                "with value, unit, source and year to the references file") from None

    def threshold(self, name: str) -> float:
        try:
            return float(self.data["thresholds"][name])
        except KeyError:
            raise ReferencesError(f"missing threshold {name!r}: add it under [thresholds]") from None


def standing(value: float | None, reference: dict | None) -> str | None:
    """better / between / worse of a value against a reference's target and limit."""
    if value is None or not reference or "target" not in reference:
        return None
    target, limit = reference["target"], reference.get("limit")
    if reference.get("direction", "lower") == "lower":
        if value <= target:
            return "better"
        return "between" if limit is not None and value <= limit else "worse"
    if value >= target:
        return "better"
    return "between" if limit is not None and value >= limit else "worse"


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _read(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ReferencesError(f"references file {path} not found: fix BOUCLE_REFERENCES or the path") from None
    except tomllib.TOMLDecodeError as exc:
        raise ReferencesError(f"references file {path} is not valid TOML ({exc}): correct it") from None


def load_references(path: str | os.PathLike[str] | None = None) -> References:
    """Defaults, overridden by `path` or else by the file named in BOUCLE_REFERENCES."""
    data = _read(DEFAULTS)
    override = path or os.environ.get("BOUCLE_REFERENCES")
    if override:
        data = _merge(data, _read(Path(override)))
    return References(data)
