"""The rollup format: what the gateway keeps of a device's readings, and what the
indicators read. This module is its only owner: the gateway computes and writes rollups
with it, the stores keep its rows as opaque columns, the cloud decodes them with it.

A device's data over a span is a run of **intervals**: the 15-minute slots of UTC (every
time zone is a whole number of quarter-hours from UTC, so local days are whole slots too),
cut further where a span's edge falls inside a slot. Each interval holds

- `received`: the readings with ts in it;
- `measured`: bits of what those readings carried (WEIGHT: weight_g, FILL: fill_pct);
- `amount`, an integer: for meters the accepted energy in mWh that accrued in it, energy
  accruing linearly between consecutive readings (a delta after a gap is spread over the
  gap; a reset counts the new value in full; a delta above the device's rated power, or
  the protocol's 1 MW bound, × Δt × 1.5 + 1 Wh is rejected); for bins the mass deposited by
  its readings in g (rises past the 100 g hysteresis band);
- `covered` (meters): whether readings exist at or before its start and at or after its end;

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
row per device and UTC month (per-day sums, the month's events, and meters' slots).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from boucle.accounting import counter_deltas, fill_events, waste_events
from boucle.protocol import field_bounds

SLOT = 900
DAY = 86400
SLOTS_A_DAY = DAY // SLOT

WEIGHT, FILL = 1, 2
"""`measured` bits."""
RESET, REJECTED = 1, 2
"""`flags` codes."""
MAX_POWER_W = field_bounds()["power_w"][1]
"""The rate check of a meter without `rated_power_w`: the protocol's power bound (1 MW),
so that no delta is beyond physics and a slot's mWh always fits in 32 bits."""
MWH_PER_WH = 1000


class Readings(NamedTuple):
    """One device's readings, oldest first, as arrays (NaN where a reading lacks a field)."""

    times: np.ndarray
    energy_wh: np.ndarray
    weight_g: np.ndarray
    fill_pct: np.ndarray

    @classmethod
    def of(cls, rows: Sequence) -> Readings:
        """From the store's StoredReading rows (`ts`, `values`)."""
        times = np.fromiter((r.ts for r in rows), dtype=np.int64, count=len(rows))

        def column(name: str) -> np.ndarray:
            return np.array([np.nan if r.values.get(name) is None else r.values[name] for r in rows],
                            dtype=np.float64)

        return cls(times, column("energy_wh"), column("weight_g"), column("fill_pct"))

    def take(self, lo: int, hi: int) -> Readings:
        return Readings(*(a[lo:hi] for a in self))


FIELDS = ("energy_wh", "weight_g", "fill_pct")
"""The reading fields rollups are made of (store.readings(..., FIELDS))."""


class Intervals(NamedTuple):
    """A device's intervals over a span (see the module docstring) and its events there."""

    edges: np.ndarray
    """int64, one more than the intervals."""
    received: np.ndarray
    measured: np.ndarray
    amount: np.ndarray
    """int64: mWh (meters) or g (bins)."""
    covered: np.ndarray
    """bool (all False for bins)."""
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


def day_intervals(kind: str, day: int, readings: Readings, rated_power_w: float | None = None,
                  cuts: Sequence[int] = ()) -> Intervals:
    """A device's intervals over the UTC day starting at `day`.

    `readings` holds the last reading before the day (if any), the day's readings, and the
    first reading at or after its end (if any): nothing else is read, so the result is a
    function of those alone. `kind` is the registry's: "energy" (a meter) or "waste" (a bin).
    """
    edges = day_edges(day, cuts)
    t = readings.times
    inside = (t >= day) & (t < day + DAY)
    slot_of = np.searchsorted(edges, t[inside], side="right") - 1
    n = edges.size - 1
    received = np.bincount(slot_of, minlength=n).astype(np.int64)
    measured = np.zeros(n, dtype=np.uint8)
    for bit, values in ((WEIGHT, readings.weight_g), (FILL, readings.fill_pct)):
        has = ~np.isnan(values[inside])
        measured[np.unique(slot_of[has])] |= bit
    if kind == "energy":
        amount, covered, flags = _energy(edges, day, readings, rated_power_w)
        return Intervals(edges, received, measured, amount, covered, _NO_EMPTYINGS, flags)
    amount, emptied = _bin(edges, day, readings, inside)
    return Intervals(edges, received, measured, amount, np.zeros(n, dtype=bool), emptied, _NO_FLAGS)


_NO_EMPTYINGS = np.zeros((0, 3))
_NO_FLAGS = np.zeros((0, 2), dtype=np.int64)
_NO_EMPTYINGS.flags.writeable = False
_NO_FLAGS.flags.writeable = False


def _energy(edges: np.ndarray, day: int, readings: Readings, rated_power_w: float | None):
    has = ~np.isnan(readings.energy_wh)
    t, v = readings.times[has], readings.energy_wh[has]
    n = edges.size - 1
    if t.size < 2:
        covered = np.zeros(n, dtype=bool)
        return np.zeros(n, dtype=np.int64), covered, _NO_FLAGS
    d = counter_deltas(v, t, rated_power_w or MAX_POWER_W)
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
    covered = (edges[:-1] >= t[0]) & (edges[1:] <= t[-1])
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
# A column per array, each of a fixed type, so that the rows of many devices decode in one
# numpy call (b"".join, frombuffer, reshape): a year of 1,000 devices is 12,000 month rows.


class DayRow(NamedTuple):
    """One device's UTC day: its 96 slots (see the module docstring)."""

    device: str
    day: int
    received: bytes
    """uint16 per slot."""
    measured: bytes
    """uint8 per slot."""
    amount: bytes
    """int32 per slot: mWh or g."""
    covered: bytes
    """packbits of the slots (meters; empty for bins)."""
    emptied: bytes
    """float64 rows of 3."""
    flags: bytes
    """int64 rows of 2."""


class MonthRow(NamedTuple):
    """One device's UTC month: per-day sums and events, and meters' slots (stored apart,
    read back as MonthSlots: a read of sums leaves them empty)."""

    device: str
    month: int
    received: bytes
    """int32 per day."""
    measured: bytes
    """uint8 per day: the OR of its slots."""
    amount: bytes
    """int64 per day."""
    emptied: bytes
    flags: bytes
    slots: bytes = b""
    """int32 per slot of the month (meters)."""
    covered: bytes = b""
    """packbits of the month's slots (meters)."""


class MonthSlots(NamedTuple):
    """A meter's slots of one UTC month, as read for a profile."""

    device: str
    month: int
    slots: bytes
    covered: bytes


DAY_COLUMNS = DayRow._fields[2:]
MONTH_COLUMNS = MonthRow._fields[2:]
MONTH_SLOT_COLUMNS = ("slots", "covered")
MONTH_SUM_COLUMNS = tuple(c for c in MONTH_COLUMNS if c not in MONTH_SLOT_COLUMNS)


def day_row(device: str, kind: str, iv: Intervals) -> DayRow:
    """The stored form of a day's intervals (its 96 slots, without cuts)."""
    if iv.received.size != SLOTS_A_DAY:
        raise ValueError("a day row holds a day's 96 slots: compute it without cuts")
    return DayRow(device, int(iv.edges[0]), iv.received.astype(np.uint16).tobytes(),
                  iv.measured.astype(np.uint8).tobytes(), iv.amount.astype(np.int32).tobytes(),
                  np.packbits(iv.covered).tobytes() if kind == "energy" else b"",
                  iv.emptied.astype(np.float64).tobytes(), iv.flags.astype(np.int64).tobytes())


def day_intervals_of(row: DayRow) -> Intervals:
    """A stored day row as intervals."""
    covered = (np.unpackbits(np.frombuffer(row.covered, dtype=np.uint8))[:SLOTS_A_DAY].astype(bool)
               if row.covered else np.zeros(SLOTS_A_DAY, dtype=bool))
    return Intervals(day_edges(row.day), np.frombuffer(row.received, dtype=np.uint16).astype(np.int64),
                     np.frombuffer(row.measured, dtype=np.uint8),
                     np.frombuffer(row.amount, dtype=np.int32).astype(np.int64), covered,
                     events(row.emptied, 3, np.float64), events(row.flags, 2, np.int64))


def events(blob: bytes, width: int, dtype) -> np.ndarray:
    """Event rows from their bytes."""
    return np.frombuffer(blob, dtype=dtype).reshape(-1, width)


def month_row(device: str, kind: str, month: int, days: Sequence[DayRow]) -> MonthRow:
    """A month row from the month's day rows (days without a row: nothing received, no
    energy known)."""
    n = days_in(month)
    received = np.zeros(n, dtype=np.int32)
    measured = np.zeros(n, dtype=np.uint8)
    amount = np.zeros(n, dtype=np.int64)
    slots = np.zeros(n * SLOTS_A_DAY, dtype=np.int32)
    covered = np.zeros(n * SLOTS_A_DAY, dtype=bool)
    emptied, flags = [], []
    for row in sorted(days, key=lambda r: r.day):
        i = (row.day - month) // DAY
        if not 0 <= i < n:
            raise ValueError(f"day {row.day} is not in the month starting {month}")
        iv = day_intervals_of(row)
        received[i] = iv.received.sum()
        measured[i] = np.bitwise_or.reduce(iv.measured)
        amount[i] = iv.amount.sum()
        slots[i * SLOTS_A_DAY:(i + 1) * SLOTS_A_DAY] = iv.amount
        covered[i * SLOTS_A_DAY:(i + 1) * SLOTS_A_DAY] = iv.covered
        emptied.append(row.emptied)
        flags.append(row.flags)
    meter = kind == "energy"
    return MonthRow(device, month, received.tobytes(), measured.tobytes(), amount.tobytes(),
                    b"".join(emptied), b"".join(flags),
                    slots.tobytes() if meter else b"", np.packbits(covered).tobytes() if meter else b"")


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


def days_in(month: int) -> int:
    return (next_month(month) - month) // DAY


def day_start(ts: int) -> int:
    return ts - ts % DAY
