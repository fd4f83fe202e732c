"""Bins' current fill and fill forecasts from their stored readings (cloud.rounds holds the
forecasts' arithmetic)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from boucle.registry import Device
from boucle.storage import Store
from cloud.rounds import BinForecast, fill_forecast, weight_forecast

FILL_FIELDS = ("fill_pct", "weight_g")


def _known(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def fill_now_pct(fill_pct, weight_g, capacity_kg: float | None) -> float | None:
    """A bin's fill from its newest reading, 0–100: the fill sensor, else weight ÷ capacity_kg
    (clamped: an overfull bin reads 100); None when neither is known."""
    if _known(fill_pct):
        level = float(fill_pct)
    elif _known(weight_g) and capacity_kg:
        level = float(weight_g) / 1000 / capacity_kg * 100
    else:
        return None
    return min(100.0, max(0.0, level))


def load_kg(weight_g) -> float | None:
    """A scale bin's load in kg (an empty bin's load cell reads a few grams either side of zero: 0)."""
    return max(0.0, round(float(weight_g) / 1000, 3)) if _known(weight_g) else None


def forecast(store: Store, device: Device, start: int, end: int) -> BinForecast | None:
    """A bin's forecast from its readings in [start, end): its fill_pct readings when it has
    them, else its weight_g against capacity_kg; None with fewer than two."""
    readings = [r for r in store.readings(device.id, start, end, FILL_FIELDS) if r.ts >= start]
    fills = [(r.ts, float(r.values["fill_pct"])) for r in readings if _known(r.values.get("fill_pct"))]
    if len(fills) >= 2:
        return fill_forecast(device.id, fills)
    if not device.capacity_kg:
        return None
    weights = [(r.ts, float(r.values["weight_g"])) for r in readings if _known(r.values.get("weight_g"))]
    return weight_forecast(device.id, weights, device.capacity_kg)


def forecasts(store: Store, bins: Sequence[Device], start: int, end: int) -> dict[str, BinForecast]:
    """Each bin's forecast from its readings in [start, end); bins without one left out."""
    out = {}
    for d in bins:
        found = forecast(store, d, start, end)
        if found is not None:
            out[d.id] = found
    return out
