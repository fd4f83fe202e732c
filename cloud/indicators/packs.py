"""The long-period data path: device series from month packs (gateway.month_packs).

`load_packs` has the `Loader` shape. The whole UTC days inside the period are read from the
devices' month packs (one row per device-month, sliced to those days), every device's
arrays decoded at once. A partial day at an edge that starts or ends on a quarter-hour (a
local midnight: a year in Paris time starts at 23:00 UTC) comes from packs too: its
readings and amounts are the day's pack less the 15-min (or hour) windows of the rest of
the day, or the windows of the part, whichever side is shorter; its 15-min slots are the
pack's. Other partial days go through `windows.load_windows` (15-min windows, raw readings
for partial quarter-hours), and so do the partial days of fill-only bins (a pack has no
fill maxima for part of a day) and of devices without the pack of an edge day's month.
Meters get a series of day points (exact totals, one point per day) and a `refine`
function that reads their 15-min slots only when an indicator needs a profile (peak, base
load, self-consumption, opening hours, machine use). Bins get their deposits, emptyings
and daily fill maxima. A device missing a pack for one of the months of the whole days (a
store aggregated before packs existed, or a device silent for a whole month) is read
through `load_windows` for the whole period (which falls back to raw readings).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from functools import cached_property, lru_cache
from itertools import chain
from operator import attrgetter

import numpy as np

from boucle.accounting import WasteEvents, counter_deltas, fill_emptyings, waste_events
from boucle.registry import Device
from boucle.storage import MonthPack, Store
from cloud.indicators.source import DeviceSeries
from cloud.indicators.values import Period
from cloud.indicators.windows import load_windows
from gateway.month_packs import DAY, QUARTER, month_start, months, next_month


def load_packs(store: Store, devices: Sequence[Device], period: Period) -> dict[str, DeviceSeries]:
    """Each device's series over `period`: month packs for the whole UTC days inside, and for
    the partial days at the edges when they start or end on a quarter-hour (a local midnight)
    the packs of those days less the 15-min windows of their other side (or plus the windows
    of the part: the smaller side); windows or readings for other partial days."""
    first = -(-period.start // DAY) * DAY
    last = period.end - period.end % DAY
    if first >= last:
        return load_windows(store, devices, period)
    head_day = first - DAY if period.start < first and period.start % QUARTER == 0 else None
    tail_day = last if last < period.end and period.end % QUARTER == 0 else None
    lo = first if head_day is None else head_day
    hi = last if tail_day is None else tail_day + DAY
    span = _Span(month_start(lo), first, last, period.start if head_day is not None else first,
                 period.end if tail_day is not None else last)
    wanted, whole = months(lo, hi), months(first, last)
    by_device: dict[str, list[MonthPack]] = {}
    for p in store.month_packs([d.id for d in devices], span.m0, hi, quarters=False):
        by_device.setdefault(p.device, []).append(p)  # by month
    packs_of: dict[str, list[MonthPack]] = {}
    edgeless: set[str] = set()  # packed, but without the pack of an edge day's month
    for d in devices:
        mine = by_device.get(d.id, [])
        if len(mine) == len(wanted):
            packs_of[d.id] = mine
        else:
            have = {p.month: p for p in mine}
            if all(m in have for m in whole):
                packs_of[d.id] = [have.get(m) or _empty_pack(d.id, m) for m in wanted]
                edgeless.add(d.id)
    packed = [d for d in devices if d.id in packs_of]
    out = load_windows(store, [d for d in devices if d.id not in packs_of], period) \
        if len(packed) < len(devices) else {}
    days = _Days(list(chain.from_iterable(packs_of[d.id] for d in packed)), len(packed), span)
    # partial days through windows and readings: all of them when not on a quarter-hour; else
    # those of fill-only bins (a part of a day has no fill maxima in a pack) and of devices
    # without the pack of an edge day (silent then, or aggregated before packs existed)
    windowed = [d for row, d in enumerate(packed)
                if not span.parts or d.id in edgeless or (d.kind == "waste" and days.filled[row])]
    head = load_windows(store, windowed, Period(period.start, first)) if period.start < first else {}
    tail = load_windows(store, windowed, Period(last, period.end)) if last < period.end else {}
    if span.parts:
        through = {d.id for d in windowed}
        parted = [i for i, d in enumerate(packed) if d.id not in through]
        ids = [packed[i].id for i in parted]
        if head_day is not None:
            days.add_part(store, ids, parted, head_day, period.start, first, at_start=True)
        if tail_day is not None:
            days.add_part(store, ids, parted, tail_day, last, period.end, at_start=False)
    quarters = _Quarters(store, packed, span, wanted)
    for row, d in enumerate(packed):
        h, t, packs = head.get(d.id), tail.get(d.id), packs_of[d.id]
        if d.kind == "energy":
            out[d.id] = _meter(quarters, d, days, row, h, t, span)
        else:
            out[d.id] = _bin(d, packs, days, row, h, t, span)
    return out


class _Span:
    """What the packs serve: the whole UTC days [first, last), and [start, end) when the
    partial days at the edges come from packs too (else start = first, end = last); packs
    read from the month m0."""

    def __init__(self, m0: int, first: int, last: int, start: int, end: int):
        self.m0, self.first, self.last, self.start, self.end = m0, first, last, start, end
        self.days = slice((first - m0) // DAY, (last - m0) // DAY)
        self.slots = slice((start - m0) // QUARTER, (end - m0) // QUARTER)
        self.parts = start < first or end > last

    @cached_property
    def day_points(self) -> np.ndarray:
        """The series' points: the start, each whole day's edge, the end."""
        edges = _edges(self.first, DAY, self.days.stop - self.days.start)
        head = [np.array([self.start])] if self.start < self.first else []
        tail = [np.array([self.end])] if self.end > self.last else []
        return np.concatenate([*head, edges, *tail]) if head or tail else edges

    def per_day(self, packs: list[MonthPack], name: str, dtype) -> np.ndarray:
        """A per-day array of the packs over the whole days (NaN for months without it)."""
        parts = [getattr(p, name) or _missing(p.month, DAY, dtype) for p in packs]
        return np.frombuffer(b"".join(parts), dtype=dtype)[self.days]


def _empty_pack(device: str, month: int) -> MonthPack:
    """A month without a pack: no readings, nothing counted (its days are read otherwise)."""
    days = (next_month(month) - month) // DAY
    return MonthPack(device, month, bytes(4 * days), bytes(8 * days))


def _missing(month: int, per: int, dtype) -> bytes:
    """A month's array of NaN (a pack without that array)."""
    return _nan_bytes((next_month(month) - month) // per, np.dtype(dtype).str)


@lru_cache(maxsize=16)
def _nan_bytes(n: int, dtype: str) -> bytes:
    return np.full(n, np.nan, dtype).tobytes()


class _Days:
    """The per-day arrays of the packed devices, a row per device, decoded in one pass for
    all of them: `packs` holds each device's packs of the same months, device after device."""

    def __init__(self, packs: list[MonthPack], n: int, span: _Span):
        self.span = span
        readings = b"".join(map(_READINGS, packs))
        amount = b"".join(map(_AMOUNT, packs))
        width = len(readings) // 4 // n if n else 0
        self.all_readings = np.frombuffer(readings, dtype=np.int32).reshape(n, width)
        self.all_amount = np.frombuffer(amount, dtype=np.float64).reshape(n, width)
        self.amount = self.all_amount[:, span.days]
        self.received = self.all_readings[:, span.days].sum(axis=1, dtype=np.int64)
        self.head = np.zeros(n) if span.start < span.first else None
        self.tail = np.zeros(n) if span.end > span.last else None
        self._cumulative: np.ndarray | None = None
        per_device = len(packs) // n if n else 0
        self.filled = np.fromiter(map(len, map(_FILL_MAX, packs)), np.int64, len(packs)).reshape(
            n, per_device).any(axis=1)
        """Per device: whether it has fill maxima (a bin with fill_pct)."""
        # every device's emptyings within [start, end), (ts, level before) rows, cut per device
        blobs = list(map(_EMPTYINGS, packs))
        pairs = np.frombuffer(b"".join(blobs), dtype=np.float64).reshape(-1, 2)
        inside = (pairs[:, 0] >= span.start) & (pairs[:, 0] < span.end)
        self.emptied = pairs[inside]
        counts = np.fromiter(map(len, blobs), np.int64, len(blobs)).reshape(n, per_device).sum(axis=1) // 16
        kept = np.concatenate([[0], np.cumsum(inside)])
        self._cuts = kept[np.concatenate([[0], np.cumsum(counts)])].tolist()

    def add_part(self, store: Store, ids: list[str], rows: list[int], day: int, start: int, end: int,
                 at_start: bool) -> None:
        """Readings and amounts of the part [start, end) of the UTC day `day` for these
        devices (rows): the 15-min windows of the part, or the day's pack less the windows of
        the rest of the day, whichever side is shorter (a local day's edge is an hour or two)."""
        if not rows:
            return
        inside = end - start <= DAY // 2
        lo, hi = (start, end) if inside else ((end, day + DAY) if start == day else (day, start))
        index = {d: r for d, r in zip(ids, rows)}
        n = self.all_readings.shape[0]
        readings, amount = np.zeros(n, dtype=np.int64), np.zeros(n)
        # hour windows (the gateway writes them with the same per-reading sums) when the side
        # is whole hours, as a local midnight is in most zones: a quarter of the rows
        resolution = "1h" if lo % 3600 == 0 and hi % 3600 == 0 else "15m"
        for w in store.windows(ids, resolution, lo, hi):
            r = index[w.device]
            readings[r] += w.readings
            amount[r] += (w.energy_wh if w.energy_wh is not None else w.deposited_g) or 0.0
        if not inside:
            col = (day - self.span.m0) // DAY
            readings[rows] = self.all_readings[rows, col] - readings[rows]
            amount[rows] = self.all_amount[rows, col] - amount[rows]
        self.received = self.received + readings
        if at_start:
            self.head = amount
        else:
            self.tail = amount

    @property
    def cumulative(self) -> np.ndarray:
        """Cumulative amount at each of the span's day points, from 0 at its start."""
        if self._cumulative is None:
            steps = [a[:, None] for a in (self.head,) if a is not None] + [self.amount] + \
                    [a[:, None] for a in (self.tail,) if a is not None]
            amounts = np.hstack(steps) if len(steps) > 1 else self.amount
            self._cumulative = np.zeros((amounts.shape[0], amounts.shape[1] + 1))
            np.cumsum(amounts, axis=1, out=self._cumulative[:, 1:])
            self._cumulative.flags.writeable = False
        return self._cumulative

    def deposited(self, row: int) -> float:
        return float(self.amount[row].sum()) + sum(float(a[row]) for a in (self.head, self.tail) if a is not None)

    def emptyings(self, row: int) -> np.ndarray:
        """A device's emptyings within [start, end): (ts, level just before) rows, oldest first."""
        return self.emptied[self._cuts[row]:self._cuts[row + 1]]


_READINGS, _AMOUNT, _FILL_MAX, _EMPTYINGS = (attrgetter(n) for n in ("readings", "amount", "fill_max", "emptyings"))


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

    def __init__(self, store: Store, devices: Sequence[Device], span: _Span, months: list[int]):
        self.store, self.span, self.months = store, span, months
        self.together = [d.id for d in devices if d.kind == "energy" and d.channel in self.TOGETHER]
        self._slots: dict[str, np.ndarray] = {}
        self._wanted: list[str] = []

    def want(self, devices: Sequence[str]) -> None:
        """Read these devices' slots with the next ones asked for (one query instead of many)."""
        self._wanted += [d for d in devices if d not in self._slots]

    def slots(self, device: Device) -> np.ndarray:
        """A meter's Wh per 15-min slot of [span.start, span.end), NaN where it had no window."""
        if device.id not in self._slots:
            if device.id in self._wanted:
                ids, self._wanted = list(dict.fromkeys(self._wanted)), []
            else:
                ids = self.together if device.id in self.together else [device.id]
            by_device: dict[str, dict[int, bytes]] = defaultdict(dict)
            for p in self.store.month_packs(ids, self.span.m0, self.span.end, quarters=True):
                by_device[p.device][p.month] = p.quarter_wh
            # one decoding for every device (a missing month or array: NaN)
            joined = np.frombuffer(b"".join(by_device[i].get(m) or _missing(m, QUARTER, np.float32)
                                            for i in ids for m in self.months), dtype=np.float32)
            block = joined.reshape(len(ids), -1)[:, self.span.slots].astype(np.float64)
            block.flags.writeable = False
            self._slots.update(zip(ids, block))
        return self._slots[device.id]


@lru_cache(maxsize=32)
def _edges(start: int, step: int, n: int) -> np.ndarray:
    """start, start + step, ..., start + n × step (read-only: shared by every device)."""
    edges = start + step * np.arange(n + 1, dtype=np.int64)
    edges.flags.writeable = False
    return edges


def _meter(quarters: _Quarters, device: Device, days: _Days, row: int, head: DeviceSeries | None,
           tail: DeviceSeries | None, span: _Span) -> DeviceSeries:
    received = int(days.received[row]) + (head.received if head else 0) + (tail.received if tail else 0)
    if head is None and tail is None:  # a point at each day's edge (and at the period's edges)
        times, values = span.day_points, days.cumulative[row]
    else:
        edges = _edges(span.first, DAY, days.amount.shape[1])
        times, values = _join(head, edges[1:], days.amount[row], tail, span.first, device.rated_power_w)

    def refine() -> DeviceSeries:
        slots, base = quarters.slots(device), span.start
        if (head is not None or tail is not None) and span.parts:  # partial days from windows
            slots, base = slots[(span.first - base) // QUARTER:(span.last - base) // QUARTER], span.first
        present = ~np.isnan(slots)
        if head is None and tail is None and present.all():
            # a window in every slot: points on the 15-min edges, as the indicators bucket them
            return DeviceSeries(device.id, _edges(base, QUARTER, slots.size), {}, baseline=False,
                                readings=received, slots_wh=slots)
        index = np.flatnonzero(present)
        ends = base + QUARTER * (index + 1)
        start = int(ends[0] - QUARTER) if index.size else base
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
    if edges and span.parts:  # partial days through windows: the packs' emptyings of whole days
        array = array[(array[:, 0] >= span.first) & (array[:, 0] < span.last)]
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
    deposited = days.deposited(row)
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
