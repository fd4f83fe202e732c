"""Rollup rows of a remote store, kept in the process that reads them (the API) and checked
against the store before each use.

A year of rollups of 1,000 devices is 43 MB of rows, ~55 MB on the wire from InfluxDB
(the meters' 15-min slots, base64): a second or more to read, where the computation takes a tenth of that. The
rows change little from one request to the next (the gateway rewrites the current month's
and day's rows), so the reader keeps them: by (table, device, day or month), the columns as
the store holds them with their digest (`boucle.rollup.row_digest` of the bytes held), and,
per query it answered (table, devices, span), the store's data version then and its rows.

- Data version unchanged since the query was answered: the same rows (nothing was written).
- Else: the store's **write marks** of the query's starts (days or months): a random
  number the store writes beside the rows of a start each time it writes rows there, after
  them (one small query, a number a start). A start whose mark is the one seen when its
  rows were last checked was not written since: the held rows (a gateway round writes the
  current day and month, not a year). For the others the stored digests of their rows (an
  integer a row) say which rows changed or appeared; only those are read again. A start
  without a mark (rows written by a store before the marks) is checked every time.
  The answer's rows at the other starts stand as they are: the work is the stale starts'.
- A copy too small for the queries asked evicts the rows read longest ago; the answers
  then drop their rows too (they would keep them alive) and are read again whole.

The copy is the store's, whoever wrote it and whenever (late data, two gateways): a held
row's digest is computed from the bytes held, so it matches the stored digest exactly when
the stored row is the one held; the stores write the data version after the data, so a
reader that sees a version sees the data written before it. The rows handed out are the
store's bytes: the indicators decode them as they decode the embedded store's.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Sequence
from typing import NamedTuple

from boucle.rollup import row_digest
from boucle.storage import ROLLUP_TABLES

Key = tuple[str, int]
"""(device, start of the row's day or month)."""
Marks = Callable[[], dict[int, int]]
"""The store's write mark of each start of the query that has one."""
Digests = Callable[[Collection[int]], list]
"""The stored rows' (start, digest, device) of these starts."""
Fetch = Callable[[Collection[Key] | None], list[NamedTuple]]
"""The rows of these keys (None: every row of the query), as the store holds them: rollup
rows (boucle.rollup DayRow, MonthRow, MonthSlots: device, start, then the columns)."""

MAX_QUERIES = 4096


class _Answer(NamedTuple):
    """What a query was last answered with."""

    version: Hashable
    """The store's rollups version then."""
    keys: list[Key]
    """Its rows' keys, in order."""
    rows: list[NamedTuple] | None
    """Its rows, in the same order (None once the copy evicted rows: read it again whole)."""
    starts: frozenset[int]
    """The starts its rows are at."""
    marks: dict[int, int]
    """The write marks its rows were checked at."""


class RollupCache:
    """A bounded copy (bytes) of a store's rollup rows."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._rows: OrderedDict[tuple[str, str, int], tuple[int, NamedTuple, int]] = OrderedDict()
        self._size = 0
        self._queries: OrderedDict[tuple, _Answer] = OrderedDict()
        self._lock = threading.Lock()
        self.fetched = 0
        """Rows read from the store so far (for benchmarks and tests)."""

    @property
    def size(self) -> int:
        """Bytes held."""
        return self._size

    def rows(self, table: str, devices: Sequence[str], start: int, end: int, version: Hashable,
             marks: Marks, digests: Digests, fetch: Fetch, read_whole: bool = False) -> list[NamedTuple]:
        """The rows of `table` of these devices with start <= day or month < end, by device
        then start, at data `version` (read before calling): the copy's, where the store's
        write marks or digests say it is still the store's. With `read_whole` a start whose
        mark moved is read again whole, without its digests first (for small rows, which a
        write mostly changes); a start without a mark is still checked by digest."""
        query = (table, tuple(sorted(set(devices))), start, end)
        with self._lock:
            known = self._queries.get(query)
            if known is not None:
                self._queries.move_to_end(query)
                if known.version == version and known.rows is not None:
                    return list(known.rows)
        seen = marks()  # before the rows: rows read after a mark are at least as new as it
        if known is None or known.rows is None:  # not answered before, or evicted: read it whole
            fresh = fetch(None)
            keys, rows = _in_order({(r[0], r[1]): r for r in fresh})
        else:
            moved = {t for t, mark in seen.items() if known.marks.get(t) != mark}
            unmarked = {t for t in known.starts if t not in seen}  # checked every time
            keys, rows, fresh = self._updated(table, query[1], known, moved if read_whole else set(),
                                              unmarked if read_whole else moved | unmarked, digests, fetch)
        with self._lock:
            self.fetched += len(fresh)
            evicted = False
            for row in fresh:
                evicted |= self._put(table, row)
            self._queries[query] = _Answer(version, keys, rows, frozenset(k[1] for k in keys), seen)
            while len(self._queries) > MAX_QUERIES:
                self._queries.popitem(last=False)
            if evicted:  # answers must not keep evicted rows alive: they read again whole
                for q, a in self._queries.items():
                    self._queries[q] = a._replace(rows=None)
        return list(rows)

    def _updated(self, table: str, devices: Sequence[str], known: _Answer, whole: set[int], checked: set[int],
                 digests: Digests, fetch: Fetch) -> tuple[list[Key], list[NamedTuple], list[NamedTuple]]:
        """The answer with the rows of these starts brought up to date: those of `whole` read
        again, those of `checked` by digest (held rows whose stored digest is the held one
        stay, the others are read). (keys, rows, rows read.)"""
        stale = whole | checked
        at = {key: i for i, key in enumerate(known.keys) if key[1] in stale}
        rows = list(known.rows)
        wanted = [(device, t) for t in sorted(whole) for device in devices]
        with self._lock:
            held = {key: self._rows.get((table, *key)) for key in at if key[1] in checked}
        changed, listed = [], set(wanted)
        for t, digest, device in (digests(checked) if checked else []):
            key = (device, t)
            listed.add(key)
            row = held.get(key)
            if row is not None and row[0] == digest:
                rows[at[key]] = row[1]
            else:
                changed.append(key)
        changed += wanted
        fresh = fetch(changed) if changed else []
        got = {(r[0], r[1]): r for r in fresh}
        if got.keys() != set(changed):  # rows not there (whole starts), or gone since the digests
            listed -= set(changed) - got.keys()
        return (*self._merged(known.keys, rows, at, listed, got), fresh)

    @staticmethod
    def _merged(keys: list[Key], rows: list[NamedTuple], at: dict[Key, int], listed: Collection[Key],
                got: dict[Key, NamedTuple]) -> tuple[list[Key], list[NamedTuple]]:
        """The answer's rows with those read (`got`) in place; the stale starts' rows are now
        those `listed` by the store. In place when the keys are the same, else rebuilt in order."""
        if listed == at.keys():
            for key, r in got.items():
                rows[at[key]] = r
            return keys, rows
        mine = {key: row for key, row in zip(keys, rows) if key not in at or key in listed}
        mine.update(got)
        return _in_order(mine)

    def _put(self, table: str, row: NamedTuple) -> bool:
        """Hold this row (the store's); True if rows were evicted to make room."""
        at = (table, row[0], row[1])
        columns = row[2:2 + len(ROLLUP_TABLES[table])]
        old = self._rows.get(at)
        size = sum(map(len, columns)) + 100
        if old is not None:
            self._size -= old[2]
        self._rows[at] = (row_digest(columns), row, size)
        self._rows.move_to_end(at)
        self._size += size
        evicted = False
        while self._size > self.max_bytes and len(self._rows) > 1:
            _, (_, _, freed) = self._rows.popitem(last=False)
            self._size -= freed
            evicted = True
        return evicted


def _in_order(rows: dict[Key, NamedTuple]) -> tuple[list[Key], list[NamedTuple]]:
    keys = sorted(rows)
    return keys, [rows[k] for k in keys]
