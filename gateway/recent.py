"""The aggregate stage's memory of what this gateway process stored: each device's recent
readings and the day rows of the months it rolls up, so that rolling up readings it has
just written does not read them back from the store (docs/gateway.md, "Rollups").

Per device:
- its readings as the writer stored them (added under `lock`, once the store confirmed
  the write) or as a fallback read them from the store; merged by ts as InfluxDB merges
  points (a later write's fields over an earlier one's at the same ts);
- `since`, a UTC day start from which the memory is taken to hold every reading the store
  holds, and `before`, the store's last reading before then (None: there is none). `since`
  is None until that was checked against the store;
- the day rows of some months, taken to be the store's.

Nothing here is trusted blindly: after every round the aggregate stage compares the memory
with the store (`Store.reading_marks`: how many readings from `since` on, the latest
`received` among them, the reading before; the day rows' digests). Another gateway process
writing the same device, a restart, readings the store dropped: each shows there, and the
device falls back to the store until its memory is reloaded from it.
"""

from __future__ import annotations

import threading
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from itertools import groupby
from operator import itemgetter
from typing import NamedTuple

import numpy as np

from boucle import rollup
from boucle.protocol import ROW_FIELDS, ReadingRow
from boucle.rollup import DayRow, Readings
from boucle.storage import RECEIVED, ReadingMarks, StoredReading

_COLUMNS = (*rollup.FIELDS, RECEIVED)
_AT = tuple(ROW_FIELDS.index(name) for name in rollup.FIELDS)


class Marks(NamedTuple):
    """What `Store.reading_marks` says of readings from a time on, in comparable form."""

    count: int
    received: float | None
    before_ts: int | None
    before_received: float | None

    @classmethod
    def of(cls, marks: ReadingMarks) -> Marks:
        before = marks.before
        return cls(marks.count, marks.received, None if before is None else before.ts,
                   None if before is None else before.values[RECEIVED])


class Table(NamedTuple):
    """A device's remembered readings, sorted by ts, one per ts (columns: rollup.FIELDS, RECEIVED)."""

    times: np.ndarray
    values: np.ndarray
    """float64, a row per reading; NaN where a reading lacks a field."""
    seq: np.ndarray
    """When each was remembered (the memory's counter)."""


_EMPTY = Table(np.zeros(0, dtype=np.int64), np.zeros((0, len(_COLUMNS))), np.zeros(0, dtype=np.int64))


class DeviceMemory:
    """One device's readings and day rows (see the module docstring)."""

    def __init__(self) -> None:
        self.since: int | None = None
        self.before: np.ndarray | None = None
        """(ts, *rollup.FIELDS, RECEIVED) of the store's last reading before `since`."""
        self._times = array("q")
        self._values = array("d")
        self._seq = array("q")
        self._table = _EMPTY
        self.days: dict[int, dict[int, tuple[DayRow, int]]] = {}
        """month → its day rows as stored (the whole month's), with their digests."""

    def __len__(self) -> int:
        return len(self._times) + self._table.times.size

    def append(self, times: Sequence[int], values: Sequence[float], seq: int) -> None:
        self._times.extend(times)
        self._values.extend(values)
        self._seq.extend([seq] * len(times))

    def table(self) -> Table:
        """The readings sorted and merged by ts."""
        if self._times:
            times = np.concatenate([self._table.times, np.array(self._times, dtype=np.int64)])
            values = np.concatenate([self._table.values, np.array(self._values).reshape(-1, len(_COLUMNS))])
            seq = np.concatenate([self._table.seq, np.array(self._seq, dtype=np.int64)])
            self._times, self._values, self._seq = array("q"), array("d"), array("q")
            self._table = _merge(times, values, seq)
        return self._table

    def replace(self, table: Table) -> None:
        self._times, self._values, self._seq = array("q"), array("d"), array("q")
        self._table = table

    def _before(self, at: int) -> tuple[int, np.ndarray] | None:
        """The last reading before the table's row `at` (memory rows before `since` are
        late ones: the later of them and `before`)."""
        t = self._table
        row = (int(t.times[at - 1]), t.values[at - 1]) if at else None
        if self.before is not None and (row is None or (row[0] < (self.since or 0) and self.before[0] > row[0])):
            return int(self.before[0]), self.before[1:]
        return row

    def marks(self, since: int) -> Marks:
        """The marks of the remembered readings from `since` on (the store's would be the same)."""
        t = self.table()
        at = int(np.searchsorted(t.times, since))
        after = t.values[at:, -1]
        before = self._before(at)
        return Marks(after.size, float(after.max()) if after.size else None, None if before is None else before[0],
                     None if before is None else float(before[1][-1]))

    def neighbours(self, t_min: int, t_max: int) -> tuple[int | None, int | None]:
        """The ts of the last reading before t_min and of the first one after t_max (t_min >= since)."""
        t = self.table()
        at = int(np.searchsorted(t.times, t_min))
        before = self._before(at)
        after = int(np.searchsorted(t.times, t_max, side="right"))
        return None if before is None else before[0], int(t.times[after]) if after < t.times.size else None

    def readings(self, lo: int, hi: int) -> Readings:
        """Readings to roll up the days of [lo, hi) (lo >= since): the last one before lo,
        those inside, the first at or after hi."""
        t = self.table()
        a = int(np.searchsorted(t.times, lo))
        b = min(int(np.searchsorted(t.times, hi)) + 1, t.times.size)
        times, values = t.times[a:b], t.values[a:b]
        before = self._before(a)
        if before is not None:
            times = np.concatenate([[before[0]], times])
            values = np.concatenate([before[1][None, :], values])
        return Readings(times.astype(np.int64), *(values[:, i] for i in range(len(rollup.FIELDS))))

    def trim(self, since: int) -> None:
        """Forget the readings before `since` (a later UTC day start), keeping the last one
        as `before`; and the day rows of the months before its month."""
        if self.since is None or since <= self.since:
            return
        t = self.table()
        at = int(np.searchsorted(t.times, since))
        before = self._before(at)
        if before is not None:
            self.before = np.concatenate([[before[0]], before[1]])
        self.replace(Table(t.times[at:], t.values[at:], t.seq[at:]))
        self.since = since
        month = rollup.month_start(since)
        for m in [m for m in self.days if m < month]:
            del self.days[m]


def _merge(times: np.ndarray, values: np.ndarray, seq: np.ndarray) -> Table:
    """Sorted by ts; readings of the same ts merged as InfluxDB merges a point written
    again: each field from the latest write that has it."""
    order = np.lexsort((seq, times))
    times, values, seq = times[order], values[order], seq[order]
    if times.size < 2 or (np.diff(times) > 0).all():
        return Table(times, values, seq)
    first = np.concatenate([[True], np.diff(times) > 0])
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], times.size)
    merged = values[starts].copy()
    for i, (a, b) in enumerate(zip(starts, ends)):
        for row in values[a + 1:b]:
            has = ~np.isnan(row)
            merged[i, has] = row[has]
    return Table(times[starts], merged, seq[ends - 1])


class RecentReadings:
    """The memory of every device this process rolls up, bounded in readings (the devices
    stored to least recently are forgotten first)."""

    def __init__(self, max_readings: int):
        self.max_readings = max_readings
        self.lock = threading.RLock()
        """Held by the writer from a store write to `add`, and by the aggregator while it
        compares the memory with the store: the two never see each other half done."""
        self._devices: OrderedDict[str, DeviceMemory] = OrderedDict()
        self._seq = 0

    def get(self, device: str) -> DeviceMemory:
        found = self._devices.get(device)
        if found is None:
            found = self._devices[device] = DeviceMemory()
        return found

    def __contains__(self, device: str) -> bool:
        return device in self._devices

    @property
    def seq(self) -> int:
        """The counter of remembered batches: readings remembered after a value of it are
        newer than a store read started then."""
        return self._seq

    def add(self, rows: Sequence[ReadingRow], received: float) -> None:
        """Readings the store just confirmed, as written at `received` (hold `lock`)."""
        self._seq += 1
        for device, group in groupby(rows, key=itemgetter(0)):
            mine = list(group)
            values: list[float] = []
            for r in mine:
                values.extend(np.nan if r[i] is None else r[i] for i in _AT)
                values.append(received)
            memory = self.get(device)
            memory.append([r[3] for r in mine], values, self._seq)
            self._devices.move_to_end(device)
        self._bound()

    def forget(self, devices: Sequence[str]) -> None:
        """Stop trusting the memory of these devices (the store may not hold what was added)."""
        for device in devices:
            if device in self._devices:
                self._devices[device].since = None

    def load(self, device: str, since: int, stored: Sequence[StoredReading], seq: int) -> bool:
        """The store's readings from `since` on (and the one before: `Store.readings` with
        RECEIVED) as the memory, with what was remembered after `seq` (the writer went on
        while they were read) merged over them. False, and nothing trusted, when the store
        holds two readings of one ts (the embedded store keeps both): the memory cannot say
        the same."""
        memory = self.get(device)
        rows = [r for r in stored if r.ts >= since]
        if len({r.ts for r in rows}) != len(rows):
            memory.since = None
            return False
        kept = memory.table()
        newer = kept.seq > seq
        times = np.array([r.ts for r in rows], dtype=np.int64)
        values = np.array([[np.nan if r.values.get(c) is None else r.values[c] for c in _COLUMNS] for r in rows],
                          dtype=np.float64).reshape(-1, len(_COLUMNS))
        memory.replace(_merge(np.concatenate([times, kept.times[newer]]), np.concatenate([values, kept.values[newer]]),
                              np.concatenate([np.zeros(times.size, dtype=np.int64), kept.seq[newer]])))
        first = stored[0] if stored and stored[0].ts < since else None
        memory.before = None if first is None else np.array(
            [first.ts, *(np.nan if first.values.get(c) is None else first.values[c] for c in _COLUMNS)])
        memory.since = since
        self._bound()
        return True

    def establish(self, device: str, since: int, marks: ReadingMarks) -> bool:
        """Take the memory as the store's from `since` on if the store holds as many readings
        from then on, the latest received as the memory's; its reading before then is the
        store's (read with the marks)."""
        memory = self.get(device)
        mine = memory.marks(since)
        if (mine.count, mine.received) != (marks.count, marks.received):
            memory.since = None
            return False
        memory.since = since
        b = marks.before
        memory.before = None if b is None else np.array(
            [b.ts, *(np.nan if b.values.get(c) is None else b.values[c] for c in _COLUMNS)])
        return True

    def _bound(self) -> None:
        total = sum(map(len, self._devices.values()))
        while total > self.max_readings and len(self._devices) > 1:
            _, gone = self._devices.popitem(last=False)
            total -= len(gone)
