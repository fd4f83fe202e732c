"""The rollup format: what the gateway keeps of a device's readings, and what the
indicators read. This module is its only owner: the gateway computes and writes rollups
with it, the stores keep its rows as opaque columns, the cloud decodes them with it.

A device's data over a span is a run of **intervals**: the 15-minute slots of UTC (every
time zone is a whole number of quarter-hours from UTC, so local days are whole slots too),
cut further where a span's edge falls inside a slot. Each interval holds

- `received`: the readings with ts in it;
- `measured`: bits of what those readings carried (WEIGHT: weight_g, FILL: fill_pct);
- `amount`, an integer: for meters (the meter kinds of boucle.kinds: energy, water) the
  accepted increments of the counter in thousandths of its unit (mWh, mL) that accrued in
  it, accruing linearly between consecutive readings (a delta after a gap is spread over
  the gap; a reset counts the new value in full; a delta above the device's rated rate, or
  the bound of the kind's rate field (1 MW, 10,000 L/min), × Δt × 1.5 + 1 unit is
  rejected); for bins the mass deposited by its readings in g (rises past the 100 g
  hysteresis band);
- `covered`: whether readings (of what the device measures: a meter's counter, a bin's
  weight or fill) exist at or before its start and at or after its end;

and the device has **events**: `emptied` (bins: ts, weight just before in g, fill just
before in %, NaN where not measured) and `flags` (meters: ts, RESET or REJECTED).

Everything here is computed per UTC day, from the day's readings and its two neighbours
(the last reading before the day, the first one at or after its end), so a day's rollup
is the same whoever computes it and whenever: the gateway when it stores readings, the
cloud from raw readings for a span the rollups do not cover. Bin levels are tracked from
the last reading before the day (the hysteresis restarts each UTC day: at most one band,
100 g, of sub-band rises per bin and day is not carried over). Amounts are integers, so
every sum is exact whatever its order: rollups and raw readings give the same values.

Stored at two resolutions: a day row per device and UTC day (its 96 slots), and a month
row per device and UTC month holding its **closed days**: their per-day sums and events
(every device), and their slots (meters, in a row of their own). A day is closed once a
reading at or after its end is known: its last slot is covered (bins' day rows carry
coverage too, for this), or a later day of the month received a reading. A month row runs
from the month's first day through its last closed day; the days after (the device's
current day, the days since its last reading) are read from their day rows. So a gateway
round, which rewrites the current day, rewrites that day's row only: the month's row
changes once a day, when a day closes. Which days a row holds changes no value: a reader
takes each day from the month row when it holds the day, else from the day's row (nothing
where there is none), which is what `month_row` put there. Rows written before this rule
(sums and events of every day; slots of every day, or of the closed days) are valid rows
too, and so are bins' day rows without coverage.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from boucle import kinds
from boucle.accounting import counter_deltas, fill_events, waste_events

SLOT = 900
DAY = 86400
SLOTS_A_DAY = DAY // SLOT

WEIGHT, FILL = 1, 2
"""`measured` bits."""
RESET, REJECTED = 1, 2
"""`flags` codes."""
MWH_PER_WH = 1000
"""Amounts of meters are in thousandths of their counter's unit (mWh, mL)."""


FIELDS = (*kinds.COUNTERS, "weight_g", "fill_pct")
"""The reading fields rollups are made of (store.readings(..., FIELDS)): the meter kinds'
counters, a bin's weight and fill."""


_Columns = NamedTuple("_Columns", [("times", np.ndarray), *((name, np.ndarray) for name in FIELDS)])


class Readings(_Columns):
    """One device's readings, oldest first, as arrays: `times`, then a column per FIELDS
    name (energy_wh, water_l, weight_g, fill_pct), NaN where a reading lacks the field."""

    __slots__ = ()

    @classmethod
    def of(cls, rows: Sequence) -> Readings:
        """From the store's StoredReading rows (`ts`, `values`)."""
        times = np.fromiter((r.ts for r in rows), dtype=np.int64, count=len(rows))

        def column(name: str) -> np.ndarray:
            return np.array([np.nan if r.values.get(name) is None else r.values[name] for r in rows],
                            dtype=np.float64)

        return cls(times, *(column(name) for name in FIELDS))

    def counter(self, name: str) -> np.ndarray:
        """A meter counter's column."""
        return getattr(self, name)

    def take(self, lo: int, hi: int) -> Readings:
        return Readings(*(a[lo:hi] for a in self))


class Intervals(NamedTuple):
    """A device's intervals over a span (see the module docstring) and its events there."""

    edges: np.ndarray
    """int64, one more than the intervals."""
    received: np.ndarray
    measured: np.ndarray
    amount: np.ndarray
    """int64: mWh (meters) or g (bins)."""
    covered: np.ndarray
    """bool."""
    emptied: np.ndarray
    """float64 rows (ts, weight before g, fill before %)."""
    flags: np.ndarray
    """int64 rows (ts, RESET or REJECTED)."""


@lru_cache(maxsize=32)
def span_edges(start: int, end: int) -> np.ndarray:
    """The interval edges of a span: its start, every UTC quarter-hour inside, its end
    (read-only: shared by every frame and formula of a period)."""
    first = -(-start // SLOT) * SLOT
    inner = np.arange(first, end, SLOT, dtype=np.int64)
    edges = np.unique(np.concatenate([[start], inner, [end]]).astype(np.int64))
    edges.flags.writeable = False
    return edges


def day_edges(day: int, cuts: Sequence[int] = ()) -> np.ndarray:
    """The interval edges of a UTC day: its slots, cut further at `cuts` inside it."""
    edges = day + SLOT * np.arange(SLOTS_A_DAY + 1, dtype=np.int64)
    inside = [c for c in cuts if day < c < day + DAY and c % SLOT]
    return np.union1d(edges, np.array(inside, dtype=np.int64)) if inside else edges


def day_intervals(kind: str, day: int, readings: Readings, rated_per_hour: float | None = None,
                  cuts: Sequence[int] = ()) -> Intervals:
    """A device's intervals over the UTC day starting at `day`.

    `readings` holds the last reading before the day (if any), the day's readings, and the
    first reading at or after its end (if any): nothing else is read, so the result is a
    function of those alone. `kind` is the registry's (a meter kind of boucle.kinds, or a
    bin); `rated_per_hour` a meter's rated rate in counter units an hour
    (boucle.kinds.rated_per_hour: its rated_power_w, or its rated_flow_m3_h in L).
    """
    edges = day_edges(day, cuts)
    t = readings.times
    if not t.size or t[0] >= day + DAY or t[-1] < day:
        # no reading in the day, none on one side of it: nothing (the days of a device's
        # life before its first reading or after its last)
        n = edges.size - 1
        zeros = np.zeros(n, dtype=np.int64)
        return Intervals(edges, zeros, np.zeros(n, dtype=np.uint8), zeros, np.zeros(n, dtype=bool), _NO_EMPTYINGS,
                         _NO_FLAGS)
    inside = (t >= day) & (t < day + DAY)
    slot_of = np.searchsorted(edges, t[inside], side="right") - 1
    n = edges.size - 1
    received = np.bincount(slot_of, minlength=n).astype(np.int64)
    measured = np.zeros(n, dtype=np.uint8)
    for bit, values in ((WEIGHT, readings.weight_g), (FILL, readings.fill_pct)):
        has = ~np.isnan(values[inside])
        measured[np.unique(slot_of[has])] |= bit
    meter = kinds.meter(kind)
    if meter is not None:
        amount, covered, flags = _meter(edges, day, readings.times, readings.counter(meter.counter),
                                        rated_per_hour or meter.max_per_hour)
        return Intervals(edges, received, measured, amount, covered, _NO_EMPTYINGS, flags)
    amount, emptied = _bin(edges, day, readings, inside)
    known = ~np.isnan(readings.weight_g) | ~np.isnan(readings.fill_pct)
    return Intervals(edges, received, measured, amount, _covered(edges, t[known]), emptied, _NO_FLAGS)


def _covered(edges: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per interval: readings at these times at or before its start and at or after its end."""
    if not t.size:
        return np.zeros(edges.size - 1, dtype=bool)
    return (edges[:-1] >= t[0]) & (edges[1:] <= t[-1])


_NO_EMPTYINGS = np.zeros((0, 3))
_NO_FLAGS = np.zeros((0, 2), dtype=np.int64)
_NO_EMPTYINGS.flags.writeable = False
_NO_FLAGS.flags.writeable = False


def _meter(edges: np.ndarray, day: int, times: np.ndarray, counter: np.ndarray, per_hour: float):
    has = ~np.isnan(counter)
    t, v = times[has], counter[has]
    n = edges.size - 1
    if t.size < 2:
        return np.zeros(n, dtype=np.int64), _covered(edges, t), _NO_FLAGS
    d = counter_deltas(v, t, per_hour)
    delta, dt = d.deltas_wh[1:], np.diff(t)
    # the energy accrued up to each edge: deltas spread linearly over their Δt, a delta of
    # two readings in the same second counted at that instant (in the interval holding it)
    spread = np.where(dt > 0, delta, 0.0)
    cumulative = np.concatenate([[0.0], np.cumsum(spread)])
    accrued = np.interp(edges.astype(np.float64), t.astype(np.float64), cumulative)
    accrued -= np.interp(float(day), t.astype(np.float64), cumulative)
    instant = dt == 0
    if instant.any():
        at = np.searchsorted(t[1:][instant], edges, side="left")
        accrued = accrued + np.concatenate([[0.0], np.cumsum(delta[instant])])[at]
    # mWh accrued since the day's start, rounded, then differenced: the intervals of any
    # cutting of the day add up exactly to its whole slots (a series' steps to the period)
    amount = np.diff(np.rint(accrued * MWH_PER_WH)).astype(np.int64)
    covered = _covered(edges, t)
    # flags of the day's own readings (the delta of the reading after the day is the next day's)
    later = t[1:]
    own = (later >= day) & (later < day + DAY)
    reset = np.concatenate([[False], np.diff(v) < 0])[1:] & own
    rejected = ~d.accepted[1:] & own
    flags = np.concatenate([np.column_stack([later[reset], np.full(int(reset.sum()), RESET)]),
                            np.column_stack([later[rejected], np.full(int(rejected.sum()), REJECTED)])])
    return amount, covered, flags[np.argsort(flags[:, 0], kind="stable")].astype(np.int64)


def _bin(edges: np.ndarray, day: int, readings: Readings, inside: np.ndarray):
    """Deposits per interval and emptyings: on the weight when the day has weight readings,
    else on the fill level (no mass then). Levels are tracked from the reading before the day."""
    n = edges.size - 1
    known = readings.times < day + DAY  # the day's readings and the one before it
    weighed = known & ~np.isnan(readings.weight_g)
    if (weighed & inside).any():
        t, w = readings.times[weighed], readings.weight_g[weighed]
        events = waste_events(t, w)
        fills = readings.fill_pct[weighed]
        own = t >= day
        amount = np.bincount(np.searchsorted(edges, t[own], side="right") - 1,
                             weights=events.deposits_g[own], minlength=n)
        emptied = np.array([(ts, top, fills[i] if i >= 0 else np.nan)
                            for (ts, top), i in zip(events.emptyings, events.tops)], dtype=np.float64)
        return np.rint(amount).astype(np.int64), emptied.reshape(-1, 3)
    filled = known & ~np.isnan(readings.fill_pct)
    if (filled & inside).any():
        found = fill_events(readings.times[filled], readings.fill_pct[filled]).emptyings
        emptied = np.array([(ts, np.nan, top) for ts, top in found], dtype=np.float64)
        return np.zeros(n, dtype=np.int64), emptied.reshape(-1, 3)
    return np.zeros(n, dtype=np.int64), _NO_EMPTYINGS


# --- stored rows --------------------------------------------------------------------------
# Few columns of fixed layouts, so that the rows of many devices decode in one numpy call
# (b"".join, frombuffer, reshape) and a year of 1,000 devices (12,000 month rows) is a few
# Python objects a row.

SLOT_CELL = np.dtype([("received", "<u2"), ("measured", "u1"), ("amount", "<i4")])
"""A day row's slot: readings, measured bits, mWh or g."""
SLOT_CELL_BYTES = 4
"""A month row's slot: int32 mWh."""
DAY_CELL = np.dtype([("received", "<i4"), ("measured", "u1"), ("amount", "<i8")])
"""A month row's day: the sums of its slots."""
EMPTIED = 0
"""`events` kind of an emptying (beside RESET and REJECTED)."""


class DayRow(NamedTuple):
    """One device's UTC day: its 96 slots (see the module docstring)."""

    device: str
    day: int
    slots: bytes
    """SLOT_CELL per slot."""
    covered: bytes
    """packbits of the slots (empty in bins' rows written before bins had coverage)."""
    events: bytes
    """float64 rows (ts, kind, weight before g, fill before %): emptyings, resets, rejected deltas."""


class MonthRow(NamedTuple):
    """One device's UTC month: per-day sums and its events, and meters' slots (stored apart,
    read back as MonthSlots: a read of sums leaves them None)."""

    device: str
    month: int
    days: bytes
    """DAY_CELL per closed day of the month, from its first day (see the module docstring;
    every day in rows written before the rule)."""
    events: bytes
    """The events of those days."""
    slots: bytes | None = None
    """int32 mWh per slot of the month's closed days, from its first day (meters; None for
    bins: no slots row; b"" for a meter without a closed day in the month yet)."""
    covered: bytes | None = None
    """packbits of those slots (meters)."""


class MonthSlots(NamedTuple):
    """A meter's slots of one UTC month, as read for a profile: those of its first
    `held_days` days (see the module docstring)."""

    device: str
    month: int
    slots: bytes
    covered: bytes


def held_days(row: MonthSlots) -> int:
    """The days a month's slots row holds, from the month's first day: the others are read
    from their day rows."""
    return len(row.slots) // (SLOT_CELL_BYTES * SLOTS_A_DAY)


def sums_held_days(row: MonthRow) -> int:
    """The days a month row's sums and events hold, from the month's first day: the others
    are read from their day rows."""
    return len(row.days) // DAY_CELL.itemsize


DAY_COLUMNS = DayRow._fields[2:]
MONTH_COLUMNS = MonthRow._fields[2:]
MONTH_SLOT_COLUMNS = ("slots", "covered")
MONTH_SUM_COLUMNS = tuple(c for c in MONTH_COLUMNS if c not in MONTH_SLOT_COLUMNS)


def row_digest(columns: Sequence[bytes]) -> int:
    """A stored row's fingerprint: a signed 64-bit integer (an InfluxDB integer field) of its
    columns. The stores keep it beside the row, so that whoever holds a copy of the row (the
    API's rollup cache, the gateway's aggregate stage) can tell whether the stored row is
    still the same by reading the digest alone."""
    h = hashlib.blake2b(digest_size=8)
    for column in columns:
        h.update(len(column).to_bytes(4, "little"))
        h.update(column)
    return int.from_bytes(h.digest(), "little", signed=True)


def events_blob(emptied: np.ndarray, flags: np.ndarray) -> bytes:
    """The stored form of emptyings (ts, weight, fill) and flags (ts, RESET or REJECTED), in
    time order."""
    rows = np.zeros((len(emptied) + len(flags), 4))
    rows[:len(emptied), 0] = emptied[:, 0]
    rows[:len(emptied), 2:] = emptied[:, 1:]
    rows[len(emptied):, :2] = flags
    rows[len(emptied):, 2:] = np.nan
    return rows[np.argsort(rows[:, 0], kind="stable")].tobytes()


def split_events(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Event rows (ts, kind, weight, fill) as (emptyings (ts, weight, fill), flags (ts, kind))."""
    emptied = rows[:, 1] == EMPTIED
    return rows[emptied][:, (0, 2, 3)], rows[~emptied][:, :2].astype(np.int64)


EVENT_BYTES = 4 * 8
"""One stored event row: (ts, kind, weight, fill) as float64."""


def events(blob: bytes) -> np.ndarray:
    """Event rows from their bytes: (ts, kind, weight before g, fill before %)."""
    return np.frombuffer(blob, dtype=np.float64).reshape(-1, 4)


def day_row(device: str, kind: str, iv: Intervals) -> DayRow:
    """The stored form of a day's intervals (its 96 slots, without cuts)."""
    if iv.received.size != SLOTS_A_DAY:
        raise ValueError("a day row holds a day's 96 slots: compute it without cuts")
    cells = np.empty(SLOTS_A_DAY, dtype=SLOT_CELL)
    cells["received"], cells["measured"], cells["amount"] = iv.received, iv.measured, iv.amount
    return DayRow(device, int(iv.edges[0]), cells.tobytes(), np.packbits(iv.covered).tobytes(),
                  events_blob(iv.emptied, iv.flags))


def day_intervals_of(row: DayRow) -> Intervals:
    """A stored day row as intervals."""
    return DayBlock([row]).intervals(0)


class DayBlock:
    """Many devices' day rows of one UTC day, decoded in one pass: arrays of a row per device
    (in the order of `ids`) and a column per slot."""

    def __init__(self, rows: Sequence[DayRow]):
        self.ids = [r.device for r in rows]
        self.index = {d: i for i, d in enumerate(self.ids)}
        self.day = rows[0].day if rows else 0
        n = len(rows)
        cells = np.frombuffer(b"".join(r.slots for r in rows), dtype=SLOT_CELL).reshape(n, SLOTS_A_DAY)
        self.received = cells["received"].astype(np.int64)
        self.measured = cells["measured"]
        self.amount = cells["amount"].astype(np.int64)
        bits = b"".join(r.covered or _NOT_COVERED for r in rows)
        self.covered = np.unpackbits(np.frombuffer(bits, dtype=np.uint8)).view(bool).reshape(n, SLOTS_A_DAY)
        self.events = [events(r.events) for r in rows]

    def intervals(self, i: int) -> Intervals:
        emptied, flags = split_events(self.events[i])
        return Intervals(day_edges(self.day), self.received[i], self.measured[i], self.amount[i], self.covered[i],
                         emptied, flags)


_NOT_COVERED = bytes(SLOTS_A_DAY // 8)


def month_row(device: str, kind: str, month: int, days: Sequence[DayRow]) -> MonthRow:
    """A month row from the month's day rows (days without a row: nothing received, no
    energy known), through its last closed day (module docstring)."""
    n = days_in(month)
    sums = np.zeros(n, dtype=DAY_CELL)
    slots = np.zeros(n * SLOTS_A_DAY, dtype=np.int32)
    covered = np.zeros(n * SLOTS_A_DAY, dtype=bool)
    rows = sorted(days, key=lambda r: r.day)
    if any(not 0 <= (r.day - month) // DAY < n for r in rows):
        raise ValueError(f"a day row is not in the month starting {month}")
    if rows:
        block = DayBlock(rows)
        at = (np.array([r.day for r in rows]) - month) // DAY
        sums["received"][at] = block.received.sum(axis=1)
        sums["measured"][at] = np.bitwise_or.reduce(block.measured, axis=1)
        sums["amount"][at] = block.amount.sum(axis=1)
        cells = (at[:, None] * SLOTS_A_DAY + np.arange(SLOTS_A_DAY)).reshape(-1)
        slots[cells] = block.amount.reshape(-1)
        covered[cells] = block.covered.reshape(-1)
    held = closed_days(at, block.covered[:, -1], sums["received"]) if rows else 0
    events = b"".join(r.events for r in rows if r.day < month + held * DAY)
    if kind not in kinds.METERS:
        return MonthRow(device, month, sums[:held].tobytes(), events)
    cells = held * SLOTS_A_DAY
    return MonthRow(device, month, sums[:held].tobytes(), events, slots[:cells].tobytes(),
                    np.packbits(covered[:cells]).tobytes())


def closed_days(at: np.ndarray, last_covered: np.ndarray, received: np.ndarray) -> int:
    """How many days from the month's first a month row holds: through its last closed day.
    `at` are the days of the month's day rows, `last_covered` whether each one's last slot is
    covered, `received` the readings of every day of the month."""
    closed = at[last_covered]
    latest = np.flatnonzero(received)  # a day before the latest one with a reading is closed
    through = max(int(closed.max()) if closed.size else -1, int(latest[-1]) - 1 if latest.size else -1)
    return through + 1


def month_slot_arrays(rows: Sequence[MonthSlots], open_days: Sequence[DayRow] = ()) -> tuple[np.ndarray, np.ndarray]:
    """(mWh, covered) per slot of n meters' month (their slots rows of one month), as (n,
    slots of the month) arrays: the days each row holds, then the later days from their day
    rows among `open_days` (any day rows of these devices; a day without one: nothing)."""
    month = rows[0].month
    width = days_in(month) * SLOTS_A_DAY
    n = len(rows)
    held = [len(r.slots) // SLOT_CELL_BYTES for r in rows]
    if min(held) == max(held):  # usually: every meter's rows hold the same days
        k = held[0]
        joined = np.frombuffer(b"".join(r.slots for r in rows), dtype=np.int32).reshape(n, k)
        bits = covered_bits([r.covered for r in rows], n * k).reshape(n, k)
        if k == width:
            return joined, bits
        amount, covered = np.zeros((n, width), dtype=np.int32), np.zeros((n, width), dtype=bool)
        amount[:, :k], covered[:, :k] = joined, bits
    else:
        amount, covered = np.zeros((n, width), dtype=np.int32), np.zeros((n, width), dtype=bool)
        for i, (r, k) in enumerate(zip(rows, held)):
            amount[i, :k] = np.frombuffer(r.slots, dtype=np.int32)
            covered[i, :k] = covered_bits([r.covered], k)
    index = {r.device: i for i, r in enumerate(rows)}
    later = [r for r in open_days if r.device in index and month + held[index[r.device]] // SLOTS_A_DAY * DAY
             <= r.day < month + width // SLOTS_A_DAY * DAY]
    if later:
        block = DayBlock(later)
        at = np.array([index[r.device] for r in later])
        cells = ((np.array([r.day for r in later]) - month) // DAY * SLOTS_A_DAY)[:, None] + np.arange(SLOTS_A_DAY)
        amount[at[:, None], cells] = block.amount
        covered[at[:, None], cells] = block.covered
    return amount, covered


def month_sums(rows: Sequence[MonthRow], n: int, open_days: Sequence[DayRow] = ()) -> np.ndarray:
    """The DAY_CELL arrays of n devices' month rows (the same consecutive months each, device
    after device) as an (n, days of those months) array: the days each row holds, and the
    others from their day rows among `open_days` (day rows of days those month rows do not
    hold: `open_spans`); a day without either: nothing."""
    k = len(rows) // n if n else 0
    widths = [days_in(r.month) * DAY_CELL.itemsize for r in rows[:k]]
    # rows holding their closed days only (the current month's): the others are zeros
    joined = b"".join(r.days if len(r.days) == w else r.days.ljust(w, b"\0")
                      for r, w in zip(rows, itertools.cycle(widths)))
    out = np.frombuffer(joined, dtype=DAY_CELL).reshape(n, -1)
    if open_days:
        out = out.copy()
        index = {r.device: i for i, r in enumerate(rows[::k])}
        block = DayBlock(open_days)
        at = np.array([index[r.device] for r in open_days])
        day = (np.array([r.day for r in open_days]) - rows[0].month) // DAY
        out["received"][at, day] = block.received.sum(axis=1)
        out["measured"][at, day] = np.bitwise_or.reduce(block.measured, axis=1)
        out["amount"][at, day] = block.amount.sum(axis=1)
    return out


def open_spans(rows: Sequence[MonthRow], start: int, end: int) -> dict[str, list[tuple[int, int]]]:
    """Per device, the spans of the days inside [start, end) that its month rows do not hold
    (their open days: read from their day rows)."""
    out: dict[str, list[tuple[int, int]]] = {}
    for r in rows:
        held, n = sums_held_days(r), days_in(r.month)
        if held < n:
            lo, hi = max(start, r.month + held * DAY), min(end, r.month + n * DAY)
            if lo < hi:
                out.setdefault(r.device, []).append((lo, hi))
    return out


def covered_bits(blobs: Sequence[bytes], n: int) -> np.ndarray:
    """Covered flags from their packed bits (a day's or month's slots are whole bytes)."""
    # unpackbits' 0s and 1s are bools as they are (no copy)
    return np.unpackbits(np.frombuffer(b"".join(blobs), dtype=np.uint8), count=n).view(bool)


# --- UTC months ------------------------------------------------------------------------


def month_start(ts: int) -> int:
    """UTC start of the month holding ts."""
    d = datetime.fromtimestamp(ts, UTC)
    return int(datetime(d.year, d.month, 1, tzinfo=UTC).timestamp())


def next_month(month: int) -> int:
    d = datetime.fromtimestamp(month, UTC)
    return int(datetime(d.year + d.month // 12, d.month % 12 + 1, 1, tzinfo=UTC).timestamp())


def months(start: int, end: int) -> list[int]:
    """Starts of the UTC months overlapping [start, end)."""
    out, m = [], month_start(start)
    while m < end:
        out.append(m)
        m = next_month(m)
    return out


@lru_cache(maxsize=4096)
def days_in(month: int) -> int:
    return (next_month(month) - month) // DAY


def day_start(ts: int) -> int:
    return ts - ts % DAY
