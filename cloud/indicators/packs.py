"""The long-period data path: device series from month packs (gateway.month_packs).

`load_packs` has the `Loader` shape. The whole UTC days inside the period are read from the
devices' month packs (one row per device-month, sliced to those days); the partial days at
the edges go through `windows.load_windows` (15-min windows, raw readings for partial
quarter-hours).
Meters get a series of day points (exact totals, one point per day) and a `refine`
function that reads their 15-min slots only when an indicator needs a profile (peak, base
load, self-consumption, opening hours, machine use). Bins get their deposits, emptyings
and daily fill maxima. A device missing a pack for one of the months (a store aggregated
before packs existed, or a device silent for a whole month) is read through `load_windows`
for the whole period (which falls back to raw readings).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from boucle.accounting import WasteEvents, counter_deltas, fill_emptyings, waste_events
from boucle.registry import Device
from boucle.storage import MonthPack, Store
from cloud.indicators.source import DeviceSeries
from cloud.indicators.values import Period
from cloud.indicators.windows import load_windows
from gateway.month_packs import DAY, QUARTER, month_start, months, next_month


def load_packs(store: Store, devices: Sequence[Device], period: Period) -> dict[str, DeviceSeries]:
    """Each device's series over `period`: month packs for the whole UTC days inside, windows
    or readings for the partial days at the edges."""
    first = -(-period.start // DAY) * DAY
    last = period.end - period.end % DAY
    if first >= last:
        return load_windows(store, devices, period)
    span = _Span(month_start(first), first, last)
    wanted = months(first, last)
    by_device: dict[str, list[MonthPack]] = defaultdict(list)
    for p in store.month_packs([d.id for d in devices], span.m0, last, quarters=False):
        by_device[p.device].append(p)
    packed = [d for d in devices if len(by_device[d.id]) == len(wanted)]
    quarters = _Quarters(store, packed, span)
    out = load_windows(store, [d for d in devices if len(by_device[d.id]) != len(wanted)], period) \
        if len(packed) < len(devices) else {}
    head = load_windows(store, packed, Period(period.start, first)) if period.start < first else {}
    tail = load_windows(store, packed, Period(last, period.end)) if last < period.end else {}
    days = _Days([by_device[d.id] for d in packed], span)
    for row, d in enumerate(packed):
        h, t, packs = head.get(d.id), tail.get(d.id), by_device[d.id]
        if d.kind == "energy":
            out[d.id] = _meter(quarters, d, days, row, h, t, span)
        else:
            out[d.id] = _bin(d, packs, days, row, h, t, span)
    return out


class _Span:
    """The whole UTC days [first, last) read from packs starting with the month m0."""

    def __init__(self, m0: int, first: int, last: int):
        self.m0, self.first, self.last = m0, first, last
        self.days = slice((first - m0) // DAY, (last - m0) // DAY)
        per_day = DAY // QUARTER
        self.slots = slice(self.days.start * per_day, self.days.stop * per_day)

    def per_day(self, packs: list[MonthPack], name: str, dtype) -> np.ndarray:
        """A per-day array of the packs over the span (NaN for months without it)."""
        parts = [getattr(p, name) or _missing(p.month, DAY, dtype) for p in packs]
        return np.frombuffer(b"".join(parts), dtype=dtype)[self.days]


def _missing(month: int, per: int, dtype) -> bytes:
    """A month's array of NaN (a pack without that array)."""
    return _nan_bytes((next_month(month) - month) // per, np.dtype(dtype).str)


@lru_cache(maxsize=16)
def _nan_bytes(n: int, dtype: str) -> bytes:
    return np.full(n, np.nan, dtype).tobytes()


class _Days:
    """The per-day arrays of the packed devices over the span, a row per device, decoded in
    one pass for all of them (every packed device has a pack for each month)."""

    def __init__(self, packs: list[list[MonthPack]], span: _Span):
        n = len(packs)
        readings = b"".join(p.readings for mine in packs for p in mine)
        amount = b"".join(p.amount for mine in packs for p in mine)
        width = len(readings) // 4 // n if n else 0
        self.readings = np.frombuffer(readings, dtype=np.int32).reshape(n, width)[:, span.days]
        self.amount = np.frombuffer(amount, dtype=np.float64).reshape(n, width)[:, span.days]
        self.received = self.readings.sum(axis=1, dtype=np.int64)
        # cumulative amount at each day's edge, from 0 at the span's first day
        self.cumulative = np.zeros((n, self.amount.shape[1] + 1))
        np.cumsum(self.amount, axis=1, out=self.cumulative[:, 1:])
        self.cumulative.flags.writeable = False
        # every device's emptyings within the span, (ts, level before) rows, cut per device
        blobs = [p.emptyings for mine in packs for p in mine]
        pairs = np.frombuffer(b"".join(blobs), dtype=np.float64).reshape(-1, 2)
        inside = (pairs[:, 0] >= span.first) & (pairs[:, 0] < span.last)
        self.emptied = pairs[inside]
        counts = [sum(len(p.emptyings) for p in mine) // 16 for mine in packs]
        kept = np.concatenate([[0], np.cumsum(inside)])
        self._cuts = kept[np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])].tolist()

    def emptyings(self, row: int) -> np.ndarray:
        """A device's emptyings within the span: (ts, level just before) rows, oldest first."""
        return self.emptied[self._cuts[row]:self._cuts[row + 1]]



class _Pairs(Sequence):
    """(ts, level) tuples over a 2-column array, made only when read (the indicators read the
    array: tens of thousands of tuples a year cost more in garbage collection than in use)."""

    def __init__(self, rows: np.ndarray):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        ts, level = self.rows[i]
        return int(ts), float(level)


def _accepted(series: DeviceSeries | None, rated_power_w: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(times, accepted Wh counted from the first point) of an edge series."""
    if series is None:
        return np.zeros(0, np.int64), np.zeros(0)
    t, v = series.field("energy_wh")
    if not t.size:
        return t, v
    if series.rollup:
        return t, v - v[0]
    return t, np.cumsum(counter_deltas(v, t, rated_power_w).deltas_wh)


def _join(head: DeviceSeries | None, times: np.ndarray, steps: np.ndarray, tail: DeviceSeries | None,
          start: int, rated_power_w: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative Wh at head points, at the end of each step (`times` are step ends), at tail points."""
    parts_t: list[np.ndarray] = []
    parts_v: list[np.ndarray] = []
    total = 0.0
    ht, hv = _accepted(head, rated_power_w)
    if ht.size:
        parts_t.append(ht)
        parts_v.append(hv - hv[0])
        total = float(hv[-1] - hv[0])
    else:  # nothing before the first step: its energy accrues from its start
        parts_t.append(np.array([start], dtype=np.int64))
        parts_v.append(np.array([0.0]))
    cum = total + np.cumsum(steps)
    parts_t.append(times)
    parts_v.append(cum)
    total = float(cum[-1]) if cum.size else total
    tt, tv = _accepted(tail, rated_power_w)
    if tt.size:
        later = tt > parts_t[-1][-1] if parts_t[-1].size else np.ones(tt.size, dtype=bool)
        parts_t.append(tt[later])
        parts_v.append(total + (tv - tv[0])[later])
    return np.concatenate(parts_t), np.concatenate(parts_v)


class _Quarters:
    """15-min slots of the packed meters, read on first demand: grid and PV meters together
    (peak, base load and self-consumption need all of them), other meters one by one
    (machines: only Fablab use and whole-site load meters need theirs)."""

    TOGETHER = ("grid_import", "pv_production")

    def __init__(self, store: Store, devices: Sequence[Device], span: _Span):
        self.store, self.span = store, span
        self.together = [d.id for d in devices if d.kind == "energy" and d.channel in self.TOGETHER]
        self._slots: dict[str, np.ndarray] = {}
        self._wanted: list[str] = []

    def want(self, devices: Sequence[str]) -> None:
        """Read these devices' slots with the next ones asked for (one query instead of many)."""
        self._wanted += [d for d in devices if d not in self._slots]

    def slots(self, device: Device) -> np.ndarray:
        """A meter's Wh per 15-min slot of the span, NaN where it had no window."""
        if device.id not in self._slots:
            if device.id in self._wanted:
                ids, self._wanted = list(dict.fromkeys(self._wanted)), []
            else:
                ids = self.together if device.id in self.together else [device.id]
            by_device: dict[str, list[bytes]] = defaultdict(list)
            for p in self.store.month_packs(ids, self.span.m0, self.span.last, quarters=True):
                by_device[p.device].append(p.quarter_wh or _missing(p.month, QUARTER, np.float32))
            # one decoding for every device with all its months (all of them, unless a pack
            # was written between the two queries)
            months = max((len(b) for b in by_device.values()), default=0)
            rows = [i for i in ids if len(by_device[i]) == months]
            joined = np.frombuffer(b"".join(b for i in rows for b in by_device[i]), dtype=np.float32)
            block = joined.reshape(len(rows), -1)[:, self.span.slots].astype(np.float64) if rows else joined
            block.flags.writeable = False
            self._slots.update(zip(rows, block))
            for i in ids:
                if i not in self._slots:
                    joined = np.frombuffer(b"".join(by_device[i]), dtype=np.float32)
                    self._slots[i] = joined[self.span.slots].astype(np.float64)
        return self._slots[device.id]


@lru_cache(maxsize=32)
def _edges(start: int, step: int, n: int) -> np.ndarray:
    """start, start + step, ..., start + n × step (read-only: shared by every device)."""
    edges = start + step * np.arange(n + 1, dtype=np.int64)
    edges.flags.writeable = False
    return edges


def _meter(quarters: _Quarters, device: Device, days: _Days, row: int, head: DeviceSeries | None,
           tail: DeviceSeries | None, span: _Span) -> DeviceSeries:
    first = span.first
    received = int(days.received[row]) + (head.received if head else 0) + (tail.received if tail else 0)
    edges = _edges(first, DAY, days.amount.shape[1])
    if head is None and tail is None:  # whole days: a point at each day's edge
        times, values = edges, days.cumulative[row]
    else:
        times, values = _join(head, edges[1:], days.amount[row], tail, first, device.rated_power_w)

    def refine() -> DeviceSeries:
        slots = quarters.slots(device)
        present = ~np.isnan(slots)
        if head is None and tail is None and present.all():
            # a window in every slot: points on the 15-min edges, as the indicators bucket them
            return DeviceSeries(device.id, _edges(first, QUARTER, slots.size), {}, baseline=False,
                                readings=received, slots_wh=slots)
        index = np.flatnonzero(present)
        ends = first + QUARTER * (index + 1)
        start = int(ends[0] - QUARTER) if index.size else first
        t, v = _join(head, ends, slots[present], tail, start, device.rated_power_w)
        return DeviceSeries(device.id, t, {"energy_wh": v}, baseline=False, readings=received)

    refine.prefetch = quarters.want  # type: ignore[attr-defined]  # Context.prefetch_profiles
    return DeviceSeries(device.id, times, {"energy_wh": values}, baseline=False, readings=received,
                        refine=refine)


def _bin(device: Device, packs: list[MonthPack], days: _Days, row: int, head: DeviceSeries | None,
         tail: DeviceSeries | None, span: _Span) -> DeviceSeries:
    received = int(days.received[row]) + (head.received if head else 0) + (tail.received if tail else 0)
    edges = [s for s in (head, tail) if s is not None]
    array = days.emptyings(row)
    emptied = _Pairs(array)
    if any(p.fill_max for p in packs) or any(s.field("fill_pct")[0].size for s in edges):
        f = span.per_day(packs, "fill_max", np.float32).astype(np.float64)
        keep = ~np.isnan(f)
        times, fills = [span.first + DAY * np.flatnonzero(keep)], [f[keep]]
        found: list[tuple[int, float]] = []
        if head:
            ht, hv = head.field("fill_pct")
            times.insert(0, ht)
            fills.insert(0, hv)
            found += head.fill_emptyings if head.fill_emptyings is not None else fill_emptyings(ht, hv)
        if edges:
            found += emptied
        if tail:
            tt, tv = tail.field("fill_pct")
            skip = 1 if tail.baseline else 0
            times.append(tt[skip:])
            fills.append(tv[skip:])
            found += tail.fill_emptyings if tail.fill_emptyings is not None else fill_emptyings(tt, tv)
        return DeviceSeries(device.id, np.concatenate(times).astype(np.int64), {"fill_pct": np.concatenate(fills)},
                            baseline=False, readings=received,
                            fill_emptyings=found if edges else emptied,  # type: ignore[arg-type]
                            emptied=None if edges else array)
    deposited = float(days.amount[row].sum())
    times, levels, emptyings = [], [], []
    if head:
        ev = head.waste or waste_events(*head.field("weight_g"))
        ht, hv = head.field("weight_g")
        times.append(ht)
        levels.append(hv)
        deposited += ev.deposited_g
        emptyings += ev.emptyings
    # the level just before each emptying (the only level a pack knows), at its window's start:
    # before the emptying's own time, so that it ends the cycle the emptying closes
    times.append(array[:, 0].astype(np.int64) - 1)
    levels.append(array[:, 1])
    if edges:
        emptyings += emptied
    if tail:
        ev = tail.waste or waste_events(*tail.field("weight_g"))
        tt, tv = tail.field("weight_g")
        skip = 1 if tail.baseline else 0
        times.append(tt[skip:])
        levels.append(tv[skip:])
        deposited += ev.deposited_g
        emptyings += ev.emptyings
    if edges:
        times_all, levels_all = np.concatenate(times).astype(np.int64), np.concatenate(levels)
    else:
        times_all, levels_all = times[0], levels[0]
    return DeviceSeries(device.id, times_all, {"weight_g": levels_all}, baseline=False, readings=received,
                        waste=WasteEvents(deposited, np.zeros(0), emptyings if edges else emptied),  # type: ignore[arg-type]
                        emptied=None if edges else array)
