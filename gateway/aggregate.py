"""Aggregate stage: event-time windows (1 min, 15 min, 1 h, 1 day) per device.

Windows are recomputed from the stored raw readings whenever a reading lands in them —
on time or late — so the result does not depend on arrival order, on restarts, or on
which gateway process received which message: recomputing gives the same rows.

Energy: Σ of reset-aware, rate-checked counter deltas (each attributed to the window of
the later reading), mean and max power. Waste: deposited and collected mass (hysteresis
and emptying detection from boucle.accounting), emptyings, mean and max fill.
Windows are aligned on UTC (days are UTC days; local-day indicators sum hours).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from boucle.accounting import counter_deltas, waste_events
from boucle.storage import StoredReading, Window

RAW_RESOLUTIONS = {"1m": 60, "15m": 900, "1h": 3600}
RESOLUTIONS = {**RAW_RESOLUTIONS, "1d": 86400}
FIELDS = ("energy_wh", "power_w", "weight_g", "fill_pct")


@dataclass
class _Acc:
    readings: int = 0
    energy: float = 0.0
    has_energy: bool = False
    powers: list[float] = field(default_factory=list)
    deposited: float = 0.0
    has_weight: bool = False
    collected: float = 0.0
    emptyings: int = 0
    fills: list[float] = field(default_factory=list)


def raw_windows(device: str, stored: Sequence[StoredReading], start: int, end: int, resolution: str,
                rated_power_w: float | None = None) -> list[Window]:
    """Windows of `resolution` for readings with start <= ts < end.

    `stored` is the device's readings oldest first; those before `start` only serve as
    baselines (counter deltas, bin level).
    """
    step = RAW_RESOLUTIONS[resolution]
    times = np.array([r.ts for r in stored], dtype=np.int64)
    per_reading_wh = _energy(stored, times, rated_power_w)
    deposits, emptied = _waste(stored, times)
    acc: dict[int, _Acc] = defaultdict(_Acc)
    for i, r in enumerate(stored):
        if not start <= r.ts < end:
            continue
        a = acc[r.ts - r.ts % step]
        a.readings += 1
        v = r.values
        if v.get("energy_wh") is not None and per_reading_wh is not None:
            a.energy += per_reading_wh[i]
            a.has_energy = True
        if v.get("power_w") is not None:
            a.powers.append(v["power_w"])
        if v.get("weight_g") is not None and deposits is not None:
            a.deposited += deposits[i]
            a.has_weight = True
            if i in emptied:
                a.collected += emptied[i]
                a.emptyings += 1
        if v.get("fill_pct") is not None:
            a.fills.append(v["fill_pct"])
    return [_window(device, resolution, key, a) for key, a in sorted(acc.items())]


def _energy(stored, times, rated_power_w):
    idx = [i for i, r in enumerate(stored) if r.values.get("energy_wh") is not None]
    if not idx:
        return None
    out = np.zeros(len(stored))
    deltas = counter_deltas([stored[i].values["energy_wh"] for i in idx], times[idx], rated_power_w)
    out[idx] = deltas.deltas_wh
    return out


def _waste(stored, times):
    idx = [i for i, r in enumerate(stored) if r.values.get("weight_g") is not None]
    if not idx:
        return None, {}
    out = np.zeros(len(stored))
    events = waste_events(times[idx], [stored[i].values["weight_g"] for i in idx])
    out[idx] = events.deposits_g
    at = {int(times[i]): i for i in idx}
    emptied = {at[ts]: before for ts, before in events.emptyings if ts in at}
    return out, emptied


def _window(device: str, resolution: str, start: int, a: _Acc) -> Window:
    return Window(
        device, resolution, int(start), a.readings,
        energy_wh=a.energy if a.has_energy else None,
        power_mean_w=float(np.mean(a.powers)) if a.powers else None,
        power_max_w=float(np.max(a.powers)) if a.powers else None,
        deposited_g=a.deposited if a.has_weight else None,
        collected_g=a.collected if a.has_weight else None,
        emptyings=a.emptyings if a.has_weight else None,
        fill_mean_pct=float(np.mean(a.fills)) if a.fills else None,
        fill_max_pct=float(np.max(a.fills)) if a.fills else None,
    )


def day_windows(hours: Sequence[Window]) -> list[Window]:
    """Day windows (UTC) from a device's complete hour windows of those days."""
    by_day: dict[int, list[Window]] = defaultdict(list)
    for h in hours:
        by_day[h.start - h.start % 86400].append(h)
    out = []
    for day, hs in sorted(by_day.items()):
        n = sum(h.readings for h in hs)
        powered = [h for h in hs if h.power_mean_w is not None]
        filled = [h for h in hs if h.fill_mean_pct is not None]
        out.append(Window(
            hs[0].device, "1d", day, n,
            energy_wh=_sum(h.energy_wh for h in hs),
            power_mean_w=(sum(h.power_mean_w * h.readings for h in powered) / sum(h.readings for h in powered)
                          if powered else None),
            power_max_w=max((h.power_max_w for h in powered), default=None),
            deposited_g=_sum(h.deposited_g for h in hs),
            collected_g=_sum(h.collected_g for h in hs),
            emptyings=_sum(h.emptyings for h in hs),
            fill_mean_pct=(sum(h.fill_mean_pct * h.readings for h in filled) / sum(h.readings for h in filled)
                           if filled else None),
            fill_max_pct=max((h.fill_max_pct for h in filled), default=None),
        ))
    return out


def _sum(values):
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def affected_span(t_min: int, t_next: int) -> tuple[int, int]:
    """Hour-aligned span whose windows change when readings in [t_min, t_next] change.

    `t_next` is the ts of the first stored reading after the newest changed one (its delta
    against its predecessor changed too), or the newest changed ts when there is none.
    """
    return t_min - t_min % 3600, t_next - t_next % 3600 + 3600
