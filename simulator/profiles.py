"""Site profiles: what a site of each kind draws, produces and throws away, over time.

Pure functions of time and parameters (from profiles.toml); randomness comes from the
caller's `random.Random`, so a seed fixes every byte the fleet sends.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from boucle.registry import is_open

DEFAULT_PROFILES = Path(__file__).with_name("profiles.toml")


@dataclass(frozen=True)
class Profiles:
    """The parsed profiles file."""

    raw: dict[str, Any]

    @property
    def general(self) -> dict[str, Any]:
        return self.raw["general"]

    def energy(self, site_kind: str) -> dict[str, Any]:
        return self.raw["energy"].get(site_kind, self.raw["energy"]["other"])

    def water(self, site_kind: str) -> dict[str, float]:
        table = self.raw["water"]["sites"]
        return table.get(site_kind, table["other"])

    def deposits(self, site_kind: str) -> dict[str, float]:
        table = self.raw["waste"]["deposit_kg_per_day"]
        return table.get(site_kind, table["other"])


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


def heating_factor(profiles: Profiles, local: datetime) -> float:
    """1 + gain on 15 January, falling to 1 from April to October (cosine over the year)."""
    day = local.timetuple().tm_yday
    return 1.0 + profiles.general["heating_gain"] * max(0.0, math.cos(2 * math.pi * (day - 15) / 365.25)) ** 2


def building_power_w(profiles: Profiles, site_kind: str, hours: dict, local: datetime) -> float:
    """Site load before noise: base when closed, open load with a start-up peak when open."""
    p = profiles.energy(site_kind)
    base, open_kw = p["base_kw"] * 1000, p["open_kw"] * 1000
    heat = heating_factor(profiles, local) if p.get("heating") else 1.0
    if is_holiday(profiles, local, site_kind):
        return base * heat
    open_now = is_open(hours, local)
    early = p.get("early_start_h", 0.0)
    if not open_now and early:
        from datetime import timedelta

        open_now = is_open(hours, local + timedelta(hours=early))
    if not open_now:
        return base * heat
    minutes_open = _minutes_since_opening(hours, local)
    peak = p["startup_peak"] if minutes_open is not None and minutes_open < 15 else 1.0
    return (base + (open_kw - base) * peak) * heat


def _minutes_since_opening(hours: dict, local: datetime) -> float | None:
    t = local.hour * 60 + local.minute
    for start, end in hours.get(local.weekday(), []):
        s = start.hour * 60 + start.minute
        if s <= t < end.hour * 60 + end.minute:
            return t - s
    return None


def solar_elevation_deg(lat: float, lon: float, ts: float) -> float:
    """Sun elevation above the horizon (NOAA's simple formulas; ±0.5° is plenty here)."""
    day = ts / 86400.0 + 2440587.5 - 2451545.0  # days since J2000
    g = math.radians((357.529 + 0.98560028 * day) % 360)
    q = (280.459 + 0.98564736 * day) % 360
    ecl_lon = math.radians(q + 1.915 * math.sin(g) + 0.020 * math.sin(2 * g))
    obliquity = math.radians(23.439 - 0.00000036 * day)
    decl = math.asin(math.sin(obliquity) * math.sin(ecl_lon))
    ra = math.atan2(math.cos(obliquity) * math.sin(ecl_lon), math.cos(ecl_lon))
    gmst_h = (18.697374558 + 24.06570982441908 * day) % 24
    hour_angle = math.radians(gmst_h * 15 + lon) - ra
    lat_r = math.radians(lat)
    sin_el = math.sin(lat_r) * math.sin(decl) + math.cos(lat_r) * math.cos(decl) * math.cos(hour_angle)
    return math.degrees(math.asin(max(-1.0, min(1.0, sin_el))))


def pv_power_w(profiles: Profiles, rated_w: float, lat: float, lon: float, ts: float, cloud: float) -> float:
    """PV output: clear-sky irradiance (Haurwitz-like) attenuated by cloud cover 0..1."""
    elevation = solar_elevation_deg(lat, lon, ts)
    if elevation <= 0:
        return 0.0
    s = math.sin(math.radians(elevation))
    clear = 1098.0 * s * math.exp(-0.057 / s) / 1000.0  # fraction of 1 kW/m²
    return rated_w * profiles.raw["pv"]["performance_ratio"] * clear * (1 - 0.75 * cloud**3)
