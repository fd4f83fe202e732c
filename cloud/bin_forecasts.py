"""Bins' fill forecasts from their stored readings (cloud.rounds holds the arithmetic)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from boucle.registry import Device
from boucle.storage import Store
from cloud.rounds import BinForecast, fill_forecast

FILL_FIELDS = ("fill_pct", "weight_g")


def fill_samples(store: Store, device: Device, start: int, end: int) -> list[tuple[int, float]]:
    """A bin's (ts, fill %) over [start, end): fill_pct, else weight_g ÷ capacity_kg."""
    out = []
    for r in store.readings(device.id, start, end, FILL_FIELDS):
        if r.ts < start:
            continue  # the baseline before the window
        fill = r.values.get("fill_pct")
        if fill is None or (isinstance(fill, float) and math.isnan(fill)):
            weight = r.values.get("weight_g")
            if weight is None or not device.capacity_kg or (isinstance(weight, float) and math.isnan(weight)):
                continue
            fill = weight / 1000 / device.capacity_kg * 100
        out.append((r.ts, float(fill)))
    return out


def forecasts(store: Store, bins: Sequence[Device], start: int, end: int) -> dict[str, BinForecast]:
    """Each bin's forecast from its readings in [start, end); bins with fewer than two left out."""
    out = {}
    for d in bins:
        found = fill_forecast(d.id, fill_samples(store, d, start, end))
        if found is not None:
            out[d.id] = found
    return out
