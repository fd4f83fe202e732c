"""The indicators' one data path: a Frame per device placement over a period.

A **placement** is a device at one site for spans of the period (a device that moved has a
placement per site it was at: its readings count where they were taken). Its **frame** is
the sum of its intervals (boucle.rollup) over those spans: readings received, what they
measured, the accepted energy or the deposited mass (exact integers), the events
(emptyings, counter resets, rejected deltas), and, for the meters an indicator needs a
profile of, the energy of each interval of the period's grid.

`FrameLoader` reads them from the gateway's rollups: month rows for the whole UTC days
(and the day rows of the days a month row does not hold yet: the device's open days), day
rows for the partial days at the edges when those fall on quarter-hours (a local midnight
always does), and the same computation on raw readings
(`boucle.rollup.day_intervals`) for what the rollups do not hold: a partial quarter-hour
at an edge, a day or month the gateway has not rolled up. With `raw=True` every day comes
from raw readings: the reference path. Both give the same frames from the same readings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise

import numpy as np

from boucle import rollup
from boucle.kinds import rated_per_hour
from boucle.registry import Device
from boucle.rollup import (
    DAY,
    MWH_PER_WH,
    SLOT,
    DayBlock,
    DayRow,
    Intervals,
    MonthRow,
    MonthSlots,
    Readings,
)
from boucle.storage import Store
from cloud.indicators.values import Period

_EMPTY_EVENTS = np.zeros((0, 3))
_EMPTY_EVENTS.flags.writeable = False


@dataclass(frozen=True)
class Placement:
    """A device at a site (`device.site`) during `spans` of a period."""

    device: Device
    spans: tuple[tuple[int, int], ...]

    @property
    def key(self) -> tuple[str, str]:
        return self.device.id, self.device.site

    @property
    def seconds(self) -> int:
        return sum(e - s for s, e in self.spans)


@dataclass
class Frame:
    """What the indicators know of one placement over the period."""

    placement: Placement
    received: int = 0
    measured: int = 0
    """boucle.rollup WEIGHT | FILL bits of what its readings carried."""
    amount: int = 0
    """Accepted mWh (meters) or deposited g (bins)."""
    emptied: np.ndarray = field(default_factory=lambda: _EMPTY_EVENTS)
    """(ts, weight before g, fill before %) per emptying, oldest first."""
    resets: int = 0
    rejected: int = 0
    slots_wh: np.ndarray | None = None
    """Wh per interval of the period's grid (the integer mWh ÷ 1,000), when loaded."""
    covered: np.ndarray | None = None
    """Per grid interval: readings at or before its start and at or after its end."""
    present: np.ndarray | None = None
    """Per grid interval: inside the placement's spans."""

    @property
    def device(self) -> Device:
        return self.placement.device


ComputedDays = dict[tuple[str, int, tuple[int, ...]], Intervals]
"""Days computed from raw readings, by (device, day, cuts inside it): what the periods of a
series share (its steps cut the same days)."""


class FrameLoader:
    """Reads a period's frames, then the slots of some of them, sharing what both read
    (the partial days' rows are decoded once; `computed` keeps raw days for later periods)."""

    def __init__(self, store: Store, period: Period, raw: bool = False, computed: ComputedDays | None = None):
        self.store, self.period, self.raw = store, period, raw
        self.computed = {} if computed is None else computed
        self._spans: dict[tuple[int, int], _SpanData] = {}

    def _span(self, span: tuple[int, int], group: dict[str, list[Placement]]) -> _SpanData:
        if span not in self._spans:
            self._spans[span] = _SpanData(self.store, group, span, self.raw, self.computed)
        return self._spans[span]

    def frames(self, placements: Sequence[Placement]) -> dict[tuple[str, str], Frame]:
        """Each placement's frame over the period, without slots (see `add_slots`)."""
        totals = {p.key: _Totals() for p in placements}
        for span, group in _by_span(placements):  # in time order
            for device_id, t in self._span(span, group).totals().items():
                for p in group[device_id]:
                    totals[p.key].merge(t)
        return {p.key: totals[p.key].frame(p) for p in placements}

    def add_slots(self, frames: dict[tuple[str, str], Frame], keys: Collection[tuple[str, str]]) -> None:
        """Fill in the slots of these frames (meters whose profile an indicator needs)."""
        grid = rollup.span_edges(self.period.start, self.period.end)
        n = grid.size - 1
        wanted = [frames[k] for k in keys if frames[k].slots_wh is None]
        for span, group in _by_span([f.placement for f in wanted]):
            lo = int(np.searchsorted(grid, span[0]))
            hi = int(np.searchsorted(grid, span[1]))
            for device_id, (wh, covered) in self._span(span, group).slots(list(group)).items():
                if wh.size != hi - lo:
                    raise AssertionError(f"{device_id}: {wh.size} intervals for {hi - lo} grid intervals")
                for p in group[device_id]:
                    f = frames[p.key]
                    if (lo, hi) == (0, n) and len(p.spans) == 1:  # the whole period: the arrays as they are
                        f.slots_wh, f.covered, f.present = wh, covered, _all(n)
                        continue
                    if f.slots_wh is None:
                        f.slots_wh, f.covered, f.present = np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
                    f.slots_wh[lo:hi] = wh
                    f.covered[lo:hi] = covered
                    f.present[lo:hi] = True
        for f in wanted:
            for a in (f.slots_wh, f.covered, f.present):
                a.flags.writeable = False


@lru_cache(maxsize=8)
def _all(n: int) -> np.ndarray:
    present = np.ones(n, dtype=bool)
    present.flags.writeable = False
    return present


def _by_span(placements: Sequence[Placement]) -> list[tuple[tuple[int, int], dict[str, list[Placement]]]]:
    """Placements grouped by span (usually one: the whole period), then by device id."""
    groups: dict[tuple[int, int], dict[str, list[Placement]]] = defaultdict(lambda: defaultdict(list))
    for p in placements:
        for span in p.spans:
            groups[span][p.device.id].append(p)
    return sorted(groups.items())


@dataclass
class _Totals:
    """A frame's sums and events while its pieces are read."""

    received: int = 0
    measured: int = 0
    amount: int = 0
    emptied: list[np.ndarray] = field(default_factory=list)
    resets: int = 0
    rejected: int = 0

    def add(self, received: int, measured: int, amount: int, events: np.ndarray | None, lo: int, hi: int) -> None:
        """Sums, and the event rows (boucle.rollup.events) with lo <= ts < hi."""
        self.received += received
        self.measured |= measured
        self.amount += amount
        if events is not None and events.size:
            emptied, flags = rollup.split_events(events[(events[:, 0] >= lo) & (events[:, 0] < hi)])
            if emptied.size:
                self.emptied.append(emptied)
            if flags.size:
                self.resets += int((flags[:, 1] == rollup.RESET).sum())
                self.rejected += int((flags[:, 1] == rollup.REJECTED).sum())

    def add_intervals(self, iv: Intervals, lo: int, hi: int) -> None:
        if not (iv.received.any() or iv.amount.any() or iv.emptied.size or iv.flags.size):
            return  # a day without data (received 0 means measured 0)
        inside = (iv.edges[:-1] >= lo) & (iv.edges[1:] <= hi)
        self.received += int(iv.received[inside].sum())
        self.measured |= int(np.bitwise_or.reduce(iv.measured[inside])) if inside.any() else 0
        self.amount += int(iv.amount[inside].sum())
        emptied = iv.emptied[(iv.emptied[:, 0] >= lo) & (iv.emptied[:, 0] < hi)]
        if emptied.size:
            self.emptied.append(emptied)
        flags = iv.flags[(iv.flags[:, 0] >= lo) & (iv.flags[:, 0] < hi)]
        self.resets += int((flags[:, 1] == rollup.RESET).sum())
        self.rejected += int((flags[:, 1] == rollup.REJECTED).sum())

    def merge(self, other: _Totals) -> None:
        self.received += other.received
        self.measured |= other.measured
        self.amount += other.amount
        self.emptied += other.emptied
        self.resets += other.resets
        self.rejected += other.rejected

    def frame(self, placement: Placement) -> Frame:
        emptied = self.emptied
        return Frame(placement, self.received, self.measured, self.amount,
                     np.concatenate(emptied) if len(emptied) > 1 else emptied[0] if emptied else _EMPTY_EVENTS,
                     self.resets, self.rejected)


@dataclass
class _Piece:
    """Every device's intervals of one partial day of a span: its day rows (`block`), and
    for the devices without one, or an edge not on a quarter-hour, computed from raw
    readings (`computed`)."""

    day: int
    block: DayBlock
    computed: dict[str, Intervals]

    def take(self, device_id: str, lo: int, hi: int, amounts: list, covered: list) -> None:
        """A device's Wh and covered flags of the intervals of [lo, hi) in this day."""
        if device_id in self.computed:
            _take(self.computed[device_id], lo, hi, amounts, covered)
            return
        i, a, b = self.block.index[device_id], (lo - self.day) // SLOT, (hi - self.day) // SLOT
        amounts.append(self.block.amount[i, a:b] / MWH_PER_WH)
        covered.append(self.block.covered[i, a:b])


class _SpanData:
    """One span's data for a group of devices: whole UTC days from month rows (or raw
    readings), the partial days at its edges from day rows (or raw readings)."""

    def __init__(self, store: Store, group: dict[str, list[Placement]], span: tuple[int, int], raw: bool,
                 computed: ComputedDays):
        self.store, self.raw, self.cache = store, raw, computed
        self.devices = {device_id: places[0].device for device_id, places in group.items()}
        self.start, self.end = span
        self.first = -(-self.start // DAY) * DAY
        self.last = self.end - self.end % DAY
        if self.first > self.last:  # inside one UTC day
            self.first = self.last = self.end
            self.pieces = [(self.start - self.start % DAY, self.start, self.end)]
        else:
            self.pieces = []
            if self.start < self.first:
                self.pieces.append((self.first - DAY, self.start, self.first))
            if self.last < self.end:
                self.pieces.append((self.last, self.last, self.end))
        self.months = rollup.months(self.first, self.last) if self.first < self.last else []
        self._raw_days: dict[str, dict[int, Intervals]] = {}
        self._pieces: dict[int, _Piece] = {}
        self._days: dict[tuple[int, int], list[DayRow]] = {}

    def _day_rows(self, lo: int, hi: int) -> list[DayRow]:
        """The span's devices' day rows of [lo, hi), read once (partial days, open days)."""
        if (lo, hi) not in self._days:
            self._days[(lo, hi)] = self.store.day_rollups(list(self.devices), lo, hi)
        return self._days[(lo, hi)]

    def _open_days(self, rows: Sequence[MonthRow]) -> dict[str, list[DayRow]]:
        """Per device, the day rows of the span's whole days its month rows do not hold."""
        spans = rollup.open_spans(rows, self.first, self.last)
        if not spans:
            return {}
        out: dict[str, list[DayRow]] = defaultdict(list)
        lo, hi = min(a for v in spans.values() for a, _ in v), max(b for v in spans.values() for _, b in v)
        for r in self._day_rows(lo, hi):
            if any(a <= r.day < b for a, b in spans.get(r.device, ())):
                out[r.device].append(r)
        return out

    # --- what the frames get ------------------------------------------------------------

    def totals(self) -> dict[str, _Totals]:
        """Per device, its sums and events over the span, in time order."""
        out = {device_id: _Totals() for device_id in self.devices}
        for day, lo, hi in self.pieces:
            if day < self.first:
                self._add_piece(day, lo, hi, out)
        if self.months:
            complete, partial = self._month_rows()
            open_days = self._open_days([r for mine in (*complete.values(), *(p.values() for p in partial.values()))
                                         for r in mine])
            self._add_complete(complete, open_days, out)
            for device_id in self.devices:
                if device_id in complete:
                    continue
                have = partial.get(device_id, {})
                computed = self._computed(device_id, [m for m in self.months if m not in have])
                for month in self.months:
                    if month in have:
                        row, end = have[month], rollup.next_month(month)
                        self._add_month(row, [r for r in open_days.get(device_id, ()) if month <= r.day < end],
                                        out[device_id])
                        continue
                    for day in range(max(self.first, month), min(self.last, rollup.next_month(month)), DAY):
                        out[device_id].add_intervals(computed[day], day, day + DAY)
        for day, lo, hi in self.pieces:
            if day >= self.first:
                self._add_piece(day, lo, hi, out)
        return out

    def slots(self, ids: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per device of `ids`, (Wh, covered) of each interval of the span, in order."""
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        partial: dict[str, dict[int, MonthSlots]] = {}
        if self.months:
            complete, partial = self._slot_rows(ids)
            out = self._block_slots(complete)
        for device_id in ids:
            if device_id in out:
                continue
            amounts: list[np.ndarray] = []
            covered: list[np.ndarray] = []
            for day, lo, hi in self.pieces:
                if day < self.first:
                    self._piece(day).take(device_id, lo, hi, amounts, covered)
            if self.months:
                have = partial.get(device_id, {})
                computed = self._computed(device_id, [m for m in self.months if m not in have])
                for month in self.months:
                    lo, hi = max(self.first, month), min(self.last, rollup.next_month(month))
                    if month in have:
                        part = slice((lo - month) // SLOT, (hi - month) // SLOT)
                        mwh, bits = self._month_slots([have[month]], hi)
                        amounts.append(mwh[0, part] / MWH_PER_WH)
                        covered.append(bits[0, part])
                    else:
                        for day in range(lo, hi, DAY):
                            _take(computed[day], day, day + DAY, amounts, covered)
            for day, lo, hi in self.pieces:
                if day >= self.first:
                    self._piece(day).take(device_id, lo, hi, amounts, covered)
            out[device_id] = (np.concatenate(amounts), np.concatenate(covered))
        return out

    # --- month rows -----------------------------------------------------------------------

    def _month_rows(self) -> tuple[dict[str, list[MonthRow]], dict[str, dict[int, MonthRow]]]:
        """The span's month rows: (devices with all of them, by month; the others' by month)
        (in raw mode none: every day is computed)."""
        if self.raw:
            return {}, {}
        return _by_month(self.store.month_rollups(list(self.devices), self.months[0], self.last), self.months)

    def _slot_rows(self, ids: Sequence[str]) -> tuple[dict[str, list[MonthSlots]], dict[str, dict[int, MonthSlots]]]:
        """The same for the meters' slots."""
        if self.raw:
            return {}, {}
        return _by_month(self.store.month_slots(list(ids), self.months[0], self.last), self.months)

    def _add_complete(self, rows: dict[str, list[MonthRow]], open_days: dict[str, list[DayRow]],
                      out: dict[str, _Totals]) -> None:
        """The whole days' sums and events of the devices with all their month rows (and the
        day rows of their open days), in one decoding for all of them."""
        ids = list(rows)
        if not ids:
            return
        days = slice((self.first - self.months[0]) // DAY, (self.last - self.months[0]) // DAY)
        opened = [r for d in ids for r in open_days.get(d, ())]
        sums = rollup.month_sums([r for d in ids for r in rows[d]], len(ids), opened)[:, days]
        totals = zip(sums["received"].sum(axis=1, dtype=np.int64).tolist(),
                     np.bitwise_or.reduce(sums["measured"], axis=1).tolist(), sums["amount"].sum(axis=1).tolist())
        emptied, resets, rejected = _span_events([_events_in_order(rows[d], open_days.get(d, ())) for d in ids],
                                                 self.first, self.last)
        for d, (received, measured, amount), mine, reset, reject in zip(ids, totals, emptied, resets, rejected):
            t = out[d]
            t.add(received, measured, amount, None, self.first, self.last)
            if mine.size:
                t.emptied.append(mine)
            t.resets += reset
            t.rejected += reject

    def _add_month(self, row: MonthRow, open_days: Sequence[DayRow], t: _Totals) -> None:
        """One month row's days inside the span's whole days (and its open days' rows)."""
        lo = (max(self.first, row.month) - row.month) // DAY
        hi = (min(self.last, rollup.next_month(row.month)) - row.month) // DAY
        sums = rollup.month_sums([row], 1, open_days)[0, lo:hi]
        t.add(int(sums["received"].sum()), int(np.bitwise_or.reduce(sums["measured"])) if sums.size else 0,
              int(sums["amount"].sum()), rollup.events(_events_in_order([row], open_days)), self.first, self.last)

    def _block_slots(self, rows: dict[str, list[MonthSlots]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The span's (Wh, covered) per interval of the devices with all their months' slots,
        written into one block for all of them: the whole days from the month rows, month by
        month, the partial days' slots from their day rows on either side. (Devices whose
        partial days had to be computed from raw readings are left to the per-device path.)"""
        ids = list(rows)
        if not ids:
            return {}
        pieces = [(self._piece(day), lo, hi) for day, lo, hi in self.pieces]
        if any(d in piece.computed for piece, _, _ in pieces for d in ids):
            return {}
        width = sum((hi - lo) // SLOT for _, lo, hi in pieces) + (self.last - self.first) // SLOT
        wh, covered = np.empty((len(ids), width)), np.empty((len(ids), width), dtype=bool)
        col = 0
        for piece, lo, hi in pieces:
            if piece.day < self.first:
                col = _put_piece(ids, piece, lo, hi, wh, covered, col)
        for k, month in enumerate(self.months):
            lo, hi = max(self.first, month), min(self.last, rollup.next_month(month))
            part = slice((lo - month) // SLOT, (hi - month) // SLOT)
            n = part.stop - part.start
            amounts, bits = self._month_slots([rows[d][k] for d in ids], hi)
            np.divide(amounts[:, part], MWH_PER_WH, out=wh[:, col:col + n])
            covered[:, col:col + n] = bits[:, part]
            col += n
        for piece, lo, hi in pieces:
            if piece.day >= self.first:
                col = _put_piece(ids, piece, lo, hi, wh, covered, col)
        for a in (wh, covered):
            a.flags.writeable = False
        return {d: (wh[i], covered[i]) for i, d in enumerate(ids)}

    def _month_slots(self, rows: Sequence[MonthSlots], hi: int) -> tuple[np.ndarray, np.ndarray]:
        """(mWh, covered) per slot of these meters' month (`boucle.rollup.month_slot_arrays`),
        with the day rows of their open days before `hi` (the days their rows do not hold)."""
        month = rows[0].month
        lo = max(self.first, month + min(rollup.held_days(r) for r in rows) * DAY)
        return rollup.month_slot_arrays(rows, self._day_rows(lo, hi) if lo < hi else [])

    # --- partial days and raw readings -----------------------------------------------------

    def _piece(self, day: int) -> _Piece:
        """Every device's intervals of one partial day: its day row when the span's edges in
        it are quarter-hours, else (or without a day row) computed from raw readings."""
        if day not in self._pieces:
            on_slots = all(x % SLOT == 0 for d, lo, hi in self.pieces if d == day for x in (lo, hi))
            rows = self._day_rows(day, day + DAY) if on_slots and not self.raw else []
            block = DayBlock(rows)
            computed = {d: self._computed(d)[day] if self.raw else self._compute(d, [day])[day]
                        for d in self.devices if d not in block.index}
            self._pieces[day] = _Piece(day, block, computed)
        return self._pieces[day]

    def _add_piece(self, day: int, lo: int, hi: int, out: dict[str, _Totals]) -> None:
        piece = self._piece(day)
        block = piece.block
        if block.ids:
            a, b = (lo - day) // SLOT, (hi - day) // SLOT
            sums = zip(block.received[:, a:b].sum(axis=1).tolist(),
                       np.bitwise_or.reduce(block.measured[:, a:b], axis=1).tolist(),
                       block.amount[:, a:b].sum(axis=1).tolist(), block.events)
            for d, (received, measured, amount, events) in zip(block.ids, sums):
                out[d].add(received, measured, amount, events, lo, hi)
        for device_id, iv in piece.computed.items():
            out[device_id].add_intervals(iv, lo, hi)

    def _computed(self, device_id: str, months: Sequence[int] | None = None) -> dict[int, Intervals]:
        """Days of the span computed from raw readings, cut at the span's edges: every day in
        raw mode, else the whole days of `months` (those without a month row)."""
        if self.raw:
            if device_id not in self._raw_days:
                days = [p[0] for p in self.pieces if p[0] < self.first]
                days += list(range(self.first, self.last, DAY))
                days += [p[0] for p in self.pieces if p[0] >= self.first]
                self._raw_days[device_id] = self._compute(device_id, sorted(set(days)))
            return self._raw_days[device_id]
        days = [d for m in months or () for d in range(max(self.first, m), min(self.last, rollup.next_month(m)), DAY)]
        return self._compute(device_id, days) if days else {}

    def _compute(self, device_id: str, days: list[int]) -> dict[int, Intervals]:
        """day_intervals of these days (cut at the span's edges inside them), one store query
        per run of consecutive days not computed yet."""
        device = self.devices[device_id]
        keys = {day: (device_id, day, tuple(c for c in (self.start, self.end) if day < c < day + DAY and c % SLOT))
                for day in days}
        for run in _runs([d for d in days if keys[d] not in self.cache]):
            readings = Readings.of(self.store.readings(device_id, run[0], run[-1] + DAY, rollup.FIELDS, after=True))
            t = readings.times
            for day in run:
                lo = max(int(np.searchsorted(t, day, side="left")) - 1, 0)
                hi = int(np.searchsorted(t, day + DAY, side="left")) + 1
                self.cache[keys[day]] = rollup.day_intervals(device.kind, day, readings.take(lo, hi),
                                                             rated_per_hour(device.kind, device), cuts=keys[day][2])
        return {day: self.cache[keys[day]] for day in days}


def _events_in_order(months: Sequence[MonthRow], open_days: Sequence[DayRow]) -> bytes:
    """The event rows of a device's month rows and of its open days' rows, in time order (a
    month row's events are those of the days it holds, which come before its open days)."""
    if not open_days:
        return b"".join(r.events for r in months)
    if months and len(open_days) == 1 and open_days[0].day >= months[-1].month:  # usually: today, the last month's
        return b"".join([*(r.events for r in months), open_days[0].events])
    parts = sorted([(r.month, 0, r.events) for r in months] + [(r.day, 1, r.events) for r in open_days])
    return b"".join(p[2] for p in parts)


def _span_events(blobs: Sequence[bytes], lo: int, hi: int) -> tuple[list[np.ndarray], list[int], list[int]]:
    """Many devices' event blobs (boucle.rollup.events), each device's rows with lo <= ts <
    hi decoded in one pass: (its emptyings (ts, weight, fill), its resets, its rejected
    deltas) per blob, as `_Totals.add` counts them."""
    n = len(blobs)
    counts = np.fromiter(map(len, blobs), dtype=np.int64, count=n) // rollup.EVENT_BYTES
    rows = rollup.events(b"".join(blobs))
    owner = np.repeat(np.arange(n), counts)
    inside = (rows[:, 0] >= lo) & (rows[:, 0] < hi)
    rows, owner = rows[inside], owner[inside]
    emptied, flags = rollup.split_events(rows)
    is_emptying = rows[:, 1] == rollup.EMPTIED
    emptied.flags.writeable = False
    bounds = np.searchsorted(owner[is_emptying], np.arange(n + 1)).tolist()
    flag_owner = owner[~is_emptying]
    resets = np.bincount(flag_owner[flags[:, 1] == rollup.RESET], minlength=n).tolist()
    rejected = np.bincount(flag_owner[flags[:, 1] == rollup.REJECTED], minlength=n).tolist()
    return [emptied[a:b] for a, b in pairwise(bounds)], resets, rejected


def _put_piece(ids: Sequence[str], piece: _Piece, lo: int, hi: int, wh: np.ndarray, covered: np.ndarray,
               col: int) -> int:
    """Write the partial day's slots of [lo, hi) into the block's columns from `col`."""
    at = [piece.block.index[d] for d in ids]
    a, b = (lo - piece.day) // SLOT, (hi - piece.day) // SLOT
    np.divide(piece.block.amount[at, a:b], MWH_PER_WH, out=wh[:, col:col + b - a])
    covered[:, col:col + b - a] = piece.block.covered[at, a:b]
    return col + b - a


def _runs(days: list[int]) -> list[list[int]]:
    """Sorted days split into runs of consecutive days."""
    runs: list[list[int]] = []
    for day in days:
        if runs and day == runs[-1][-1] + DAY:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def _take(iv: Intervals, lo: int, hi: int, amounts: list, covered: list) -> None:
    """The Wh and covered flags of the intervals of [lo, hi)."""
    inside = (iv.edges[:-1] >= lo) & (iv.edges[1:] <= hi)
    amounts.append(iv.amount[inside] / MWH_PER_WH)
    covered.append(iv.covered[inside])


def _by_month(rows, months: list[int]) -> tuple[dict[str, list], dict[str, dict[int, object]]]:
    """Rows by device: (the devices with a row for every month, in month order; the others'
    rows by month)."""
    by_device: dict[str, list] = defaultdict(list)
    for row in rows:
        by_device[row.device].append(row)
    complete = {d: mine for d, mine in by_device.items() if [r.month for r in mine] == months}
    partial = {d: {r.month: r for r in mine} for d, mine in by_device.items() if d not in complete}
    return complete, partial
