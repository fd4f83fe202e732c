"""The rollup data path: device series from the gateway's event-time windows.

`load_windows` has the `Loader` shape of `source.load_series`. For each device it reads the
15-minute windows that lie wholly inside the period and the raw readings of the partial
quarter-hours at both edges (plus the baseline reading before each part), so sums are
exact: a window holds the same reset-aware, rate-checked deltas (and deposits) that the
raw path computes reading by reading. A device without any window in the period (a store
written without the gateway's aggregate stage) is read from raw readings instead.

What windows cannot hold exactly is said in docs/indicators.md ("Data path"): energy is
placed within its window instead of being spread between readings; bin hysteresis runs
from the gateway's recompute span; fill-only bins' emptyings are found on the windows'
fill maxima.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from boucle.accounting import WasteEvents, counter_deltas, fill_emptyings, waste_events
from boucle.registry import Device
from boucle.storage import Store, Window
from cloud.indicators.source import DeviceSeries, fields_of, load_series
from cloud.indicators.values import Period

RESOLUTION = "15m"
STEP_S = 900


def load_windows(store: Store, devices: Sequence[Device], period: Period) -> dict[str, DeviceSeries]:
    """Each device's series over `period` from its 15-min windows, raw readings at the edges.

    Falls back to raw readings for devices without windows in the period, and for periods
    that hold no whole quarter-hour.
    """
    first = -(-period.start // STEP_S) * STEP_S
    last = period.end - period.end % STEP_S
    if first >= last:
        return load_series(store, devices, period)
    by_device: dict[str, list[Window]] = defaultdict(list)
    for w in store.windows([d.id for d in devices], RESOLUTION, first, last):
        by_device[w.device].append(w)
    out: dict[str, DeviceSeries] = {}
    raw = [d for d in devices if not by_device.get(d.id)]
    if raw:
        out.update(load_series(store, raw, period))
    for d in devices:
        if d.id in out:
            continue
        head = _raw(store, d, period.start, first)
        tail = _raw(store, d, last, period.end)
        windows = by_device[d.id]
        if d.kind == "energy":
            out[d.id] = _energy_series(d, head, windows, tail)
        else:
            out[d.id] = _bin_series(d, head, windows, tail)
    return out


def _raw(store: Store, device: Device, start: int, end: int) -> DeviceSeries:
    """Raw readings with start <= ts < end plus the baseline before (start == end: baseline only)."""
    names = fields_of(device)
    rows = store.readings(device.id, start, end, names)
    times = np.fromiter((r.ts for r in rows), dtype=np.int64, count=len(rows))
    fields = {name: np.array([np.nan if r.values.get(name) is None else r.values[name] for r in rows],
                             dtype=np.float64) for name in names}
    return DeviceSeries(device.id, times, fields, bool(rows) and rows[0].ts < start)


def _energy_series(device: Device, head: DeviceSeries, windows: list[Window],
                   tail: DeviceSeries) -> DeviceSeries:
    """Cumulative accepted Wh: at head readings, at each window's end, at tail readings."""
    times: list[np.ndarray] = []
    values: list[np.ndarray] = []
    total = 0.0
    t, v = head.field("energy_wh")
    if t.size:
        cum = np.cumsum(counter_deltas(v, t, device.rated_power_w).deltas_wh)
        times.append(t)
        values.append(cum)
        total = float(cum[-1])
    else:  # no reading before the first window: its energy accrues from its start
        times.append(np.array([windows[0].start], dtype=np.int64))
        values.append(np.array([0.0]))
    starts = np.fromiter((w.start for w in windows), dtype=np.int64, count=len(windows))
    wh = np.fromiter((w.energy_wh or 0.0 for w in windows), dtype=np.float64, count=len(windows))
    cum = total + np.cumsum(wh)
    times.append(starts + STEP_S)
    values.append(cum)
    total = float(cum[-1]) if cum.size else total
    t, v = tail.field("energy_wh")
    if t.size > (1 if tail.baseline else 0):
        deltas = counter_deltas(v, t, device.rated_power_w).deltas_wh
        skip = 1 if tail.baseline else 0
        times.append(t[skip:])
        values.append(total + np.cumsum(deltas)[skip:])
    received = head.received + sum(w.readings for w in windows) + tail.received
    return DeviceSeries(device.id, np.concatenate(times), {"energy_wh": np.concatenate(values)},
                        baseline=False, readings=received)


def _bin_series(device: Device, head: DeviceSeries, windows: list[Window],
                tail: DeviceSeries) -> DeviceSeries:
    """A bin's level series (readings at the edges, one point per window) and its events.

    Scale bins: deposits and emptyings as the gateway accounted them; each window's point
    is the level it reached (the top before an emptying, else the level at its end).
    Fill-only bins: each window's fullest fill, emptyings found on that series.
    """
    received = head.received + sum(w.readings for w in windows) + tail.received
    starts = np.fromiter((w.start for w in windows), dtype=np.int64, count=len(windows))
    weighed = any(w.deposited_g is not None for w in windows) or head.field("weight_g")[0].size > 0 \
        or tail.field("weight_g")[0].size > 0
    if not weighed:
        fills = np.array([np.nan if w.fill_max_pct is None else w.fill_max_pct for w in windows])
        ht, hv = head.field("fill_pct")
        tt, tv = tail.field("fill_pct")
        skip = 1 if tail.baseline else 0
        times = np.concatenate([ht, starts, tt[skip:]])
        levels = np.concatenate([hv, fills, tv[skip:]])
        keep = ~np.isnan(levels)
        times, levels = times[keep], levels[keep]
        return DeviceSeries(device.id, times, {"fill_pct": levels}, baseline=False, readings=received,
                            fill_emptyings=fill_emptyings(times, levels))
    ht, hv = head.field("weight_g")
    head_events = waste_events(ht, hv)
    deposited = head_events.deposited_g
    emptyings = list(head_events.emptyings)
    level = float(hv[-1]) if hv.size else 0.0
    points = []
    for w in windows:
        deposited += w.deposited_g or 0.0
        level += (w.deposited_g or 0.0) - (w.collected_g or 0.0)
        if w.emptyings:
            top = (w.collected_g or 0.0) / w.emptyings
            # inside the window, after its start: the window's top belongs to the cycle it ends
            emptyings += [(w.start + 1, top)] * w.emptyings
            points.append(top)
        else:
            points.append(level)
        level = max(level, 0.0)
    tt, tv = tail.field("weight_g")
    tail_events = waste_events(tt, tv)
    deposited += tail_events.deposited_g
    emptyings += tail_events.emptyings
    skip = 1 if tail.baseline else 0
    times = np.concatenate([ht, starts, tt[skip:]])
    levels = np.concatenate([hv, np.array(points, dtype=np.float64), tv[skip:]])
    events = WasteEvents(deposited, np.zeros(0), emptyings)
    return DeviceSeries(device.id, times, {"weight_g": levels}, baseline=False, readings=received,
                        waste=events)
