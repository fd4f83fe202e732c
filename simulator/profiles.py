"""Site profiles: the parameters of what a site of each kind draws, produces and throws away
(profiles.toml: one section per device kind, read by that kind's model in simulator/models/,
and [general] calendars and noise shared by them).

Pure functions of time and parameters; randomness comes from the caller's `random.Random`,
so a seed fixes every byte the fleet sends.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

DEFAULT_PROFILES = Path(__file__).with_name("profiles.toml")


@dataclass(frozen=True)
class Profiles:
    """The parsed profiles file."""

    raw: dict[str, Any]

    @property
    def general(self) -> dict[str, Any]:
        return self.raw["general"]


def load_profiles(path: str | Path | None = None) -> Profiles:
    """Read a profiles file (default: simulator/profiles.toml)."""
    return Profiles(tomllib.loads(Path(path or DEFAULT_PROFILES).read_text("utf-8")))


def is_holiday(profiles: Profiles, local: datetime, site_kind: str | None = None) -> bool:
    """A public holiday, or for a school a day of the school-holiday periods."""
    day = f"{local.month:02d}-{local.day:02d}"
    if day in profiles.general["holidays"]:
        return True
    if site_kind == "school":
        for first, last in profiles.raw.get("school_holidays", {}).get("periods", []):
            # a period may span the new year ("12-20" to "01-04")
            if (first <= day <= last) if first <= last else (day >= first or day <= last):
                return True
    return False
