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


class RollupCache:
    """A bounded copy (bytes) of a store's rollup rows."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._rows: OrderedDict[tuple[str, str, int], tuple[int, NamedTuple, int]] = OrderedDict()
        self._size = 0
        self._queries: OrderedDict[tuple, tuple[Hashable, list[Key], dict[int, int]]] = OrderedDict()
        """query → (data version, its rows' keys in order, the write marks they were checked at)."""
        self._lock = threading.Lock()
        self.fetched = 0
        """Rows read from the store so far (for benchmarks and tests)."""

    @property
    def size(self) -> int:
        """Bytes held."""
        return self._size

    def rows(self, table: str, devices: Sequence[str], start: int, end: int, version: Hashable,
             marks: Marks, digests: Digests, fetch: Fetch) -> list[NamedTuple]:
        """The rows of `table` of these devices with start <= day or month < end, by device
        then start, at data `version` (read before calling): the copy's, where the store's
        write marks or digests say it is still the store's."""
        query = (table, tuple(sorted(set(devices))), start, end)
        with self._lock:
            known = self._queries.get(query)
            if known is not None:
                self._queries.move_to_end(query)
                if known[0] == version:
                    held = self._held(table, known[1])
                    if held is not None:
                        return held
        seen = marks()  # before the rows: rows read after a mark are at least as new as it
        if known is None:  # a query not answered before: read it whole (no digest query first)
            fresh = fetch(None)
            out = {(r[0], r[1]): r for r in fresh}
        else:
            with self._lock:
                out, stale = self._unwritten(table, known[1], known[2], seen)
            answer = digests(stale) if stale else []
            with self._lock:
                out.update(self._unchanged(table, answer))
            changed = [(device, t) for t, _, device in answer if (device, t) not in out]
            fresh = fetch(changed) if changed else []
            out.update(((r[0], r[1]), r) for r in fresh)
        keys = sorted(out)
        with self._lock:
            self.fetched += len(fresh)
            for row in fresh:
                self._put(table, row)
            self._queries[query] = (version, keys, seen)
            while len(self._queries) > MAX_QUERIES:
                self._queries.popitem(last=False)
        return [out[k] for k in keys]

    def _unwritten(self, table: str, keys: list[Key], checked: dict[int, int], seen: dict[int, int]
                   ) -> tuple[dict[Key, NamedTuple], list[int]]:
        """The held rows of the starts not written since they were checked (the same mark,
        every row still held), and the other starts: those with a new mark, or none."""
        rows = self._rows
        by_start: dict[int, list] = {}
        for key in keys:
            by_start.setdefault(key[1], []).append((key, rows.get((table, *key))))
        out: dict[Key, NamedTuple] = {}
        stale = {t for t, mark in seen.items() if checked.get(t) != mark}
        stale.update(t for t in by_start if t not in seen)
        for t, held in by_start.items():
            if t not in stale and any(row is None for _, row in held):
                stale.add(t)
            if t not in stale:
                out.update((key, row[1]) for key, row in held)
        return out, sorted(stale)

    def _unchanged(self, table: str, answer: list) -> dict[Key, NamedTuple]:
        """The held rows whose stored digest is the held one."""
        rows = self._rows
        out = {}
        for t, digest, device in answer:
            row = rows.get((table, device, t))
            if row is not None and row[0] == digest:
                out[(device, t)] = row[1]
        return out

    def _held(self, table: str, keys: list[Key]) -> list[NamedTuple] | None:
        """These rows from the copy, or None when one was evicted. (Rows are evicted in the
        order they were read from the store: a copy sized for the periods asked holds them.)"""
        rows = self._rows
        out = []
        for key in keys:
            row = rows.get((table, *key))
            if row is None:
                return None
            out.append(row[1])
        return out

    def _put(self, table: str, row: NamedTuple) -> None:
        at = (table, row[0], row[1])
        columns = row[2:2 + len(ROLLUP_TABLES[table])]
        old = self._rows.get(at)
        size = sum(map(len, columns)) + 100
        if old is not None:
            self._size -= old[2]
        self._rows[at] = (row_digest(columns), row, size)
        self._rows.move_to_end(at)
        self._size += size
        while self._size > self.max_bytes and len(self._rows) > 1:
            _, (_, _, freed) = self._rows.popitem(last=False)
            self._size -= freed
