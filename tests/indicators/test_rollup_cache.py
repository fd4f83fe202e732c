"""The API's rollup cache (boucle/storage/rollup_cache.py) gives the store's values, whatever
was written since it read: late readings, new ones, rows rewritten by the gateway; it reads
only the rows that changed, and a cache too small for the data still gives the same values.
Real InfluxDB, against the embedded store filled with the same readings."""

from __future__ import annotations

import dataclasses
import random

import pytest

from boucle import rollup
from boucle.rollup import DAY
from boucle.storage import ROLLUP_TABLES, open_store
from boucle.storage.rollup_cache import RollupCache
from boucle.storage.sqlite import SQLiteStore
from cloud.indicators import Scope, compute_indicators
from gateway.recent import RecentReadings
from tests.indicators.fleets import (
    AUTUMN,
    Bin,
    Fleet,
    Meter,
    fill_as_the_gateway_does,
    readings_of,
    registry_of,
)

FLEET = Fleet("Europe/Paris", AUTUMN, "months",
              (Meter("grid_import", 300, True, True, True, False, True, 4000), Meter("pv_production", 900, False, True,
                                                                                      False, False, False, 2500),
               Meter("load", 60, True, True, False, True, True, 1500)),
              (Bin("both", 300, True, True), Bin("fill", 900, False, False)), seed=7, moved=True)
TERRITORY = Scope("territory", ("terr",))


def values(store, reg, period) -> dict:
    return {v.id: dataclasses.asdict(v) for v in compute_indicators(store, reg, TERRITORY, period)}


@pytest.fixture
def stores(influxdb, tmp_path):
    url = f"influx+http://127.0.0.1:{influxdb.port}/cache"
    opened = [open_store(url), open_store(url, rollup_cache_bytes=2**26), open_store(url, rollup_cache_bytes=20_000),
              SQLiteStore(tmp_path / "x.db")]
    yield opened
    for store in opened:
        store.close()


def test_the_cache_follows_what_is_written_and_reads_only_what_changed(stores):
    influx, cached, small, sqlite = stores
    reg, period = registry_of(FLEET), FLEET.period
    readings = readings_of(FLEET)
    rng = random.Random(1)
    last = max(r.ts for r in readings) - 3 * 86400
    late = set(rng.sample(range(len(readings)), len(readings) // 20))
    phases = [[r for i, r in enumerate(readings) if r.ts < last and i not in late],
              [r for i, r in enumerate(readings) if r.ts >= last and i not in late],  # new data: the last month
              [r for i, r in enumerate(readings) if i in late]]  # late data, anywhere
    recent = RecentReadings(10**6)
    devices = [d.id for d in reg.devices]
    for n, phase in enumerate(phases):
        before = digests(influx, devices)
        fill_as_the_gateway_does(influx, reg, phase, 3, seed=n, recent=recent)
        fill_as_the_gateway_does(sqlite, reg, phase, 3, seed=n)
        changed = sum(1 for k, d in digests(influx, devices).items() if before.get(k) != d)
        want = values(sqlite, reg, period)
        read = cached.rollup_cache.fetched
        assert values(influx, reg, period) == want  # read in full
        assert values(cached, reg, period) == want
        if n:  # only rows that changed were read again (the first time: every row)
            assert 0 < cached.rollup_cache.fetched - read <= changed
        read = cached.rollup_cache.fetched
        assert values(cached, reg, period) == want and cached.rollup_cache.fetched == read  # nothing written: none
        assert values(small, reg, period) == want and small.rollup_cache.size <= 20_000 + 12_500


def test_only_the_starts_written_since_are_checked(stores):
    """The store's write marks say which starts (days, months) were written since the rows
    were checked: the others are not asked for their digests."""
    influx, cached, _, _ = stores
    reg, period = registry_of(FLEET), FLEET.period
    fill_as_the_gateway_does(influx, reg, readings_of(FLEET), 3, seed=0, recent=RecentReadings(10**6))
    devices = [d.id for d in reg.devices]
    want = values(influx, reg, period)
    assert values(cached, reg, period) == want
    asked = []
    digests = cached._digests
    cached._digests = lambda table, *args: asked.append((table, list(args[-1]))) or digests(table, *args)
    month = rollup.month_start(period.start + 2 * DAY)
    again = influx.month_rollups(devices, month, month + 1)  # their sums: written again, the same
    assert again and all(m.slots is None for m in again)
    read = cached.rollup_cache.fetched
    influx.write_rollups([], again)
    assert values(cached, reg, period) == want and cached.rollup_cache.fetched == read
    assert asked and all(a == ("rollup_months", [month]) for a in asked)  # (a query a span of placements)


def digests(store, devices) -> dict:
    return {(table, *key): digest for table in ROLLUP_TABLES
            for key, digest in store.rollup_digests(table, devices, 0, 2**33).items()}


class _Table:
    """A rollup table as the cache's callables see it: rows by (device, start), a write mark
    per start moved by each write, digests of the stored bytes."""

    def __init__(self):
        self.rows, self.marks, self.reads = {}, {}, []

    def write(self, device: str, t: int, slots: bytes) -> None:
        self.rows[(device, t)] = rollup.DayRow(device, t, slots, b"", b"")
        self.marks[t] = random.getrandbits(40)

    def delete(self, device: str, t: int) -> None:
        del self.rows[(device, t)]
        self.marks[t] = random.getrandbits(40)

    def ask(self, cache, devices, digests_first: bool = True) -> list:
        def digests(starts):
            return [(t, rollup.row_digest(r[2:]), d) for (d, t), r in self.rows.items() if t in starts]

        def fetch(keys):
            got = [r for k, r in self.rows.items() if keys is None or k in set(keys)]
            self.reads.append(len(got))
            return got

        return cache.rows("rollup_days", devices, 0, 10, tuple(sorted(self.rows.items())), lambda: dict(self.marks),
                          digests, fetch, read_whole=not digests_first)


@pytest.mark.parametrize("digests_first", [True, False])
def test_the_cache_brings_the_written_starts_up_to_date(digests_first):
    """Rows rewritten, added and deleted at a start: the answer is the table's, in order, and
    only the written start is read again (all its rows when read whole, else the changed ones)."""
    table, cache = _Table(), RollupCache(2**20)
    devices = ["a", "b", "c"]
    for d in devices:
        for t in (1, 2, 3):
            table.write(d, t, f"{d}{t}".encode())

    def want():
        return [table.rows[k] for k in sorted(table.rows)]

    assert table.ask(cache, devices, digests_first) == want() and table.reads == [9]
    table.write("b", 3, b"new")
    assert table.ask(cache, devices, digests_first) == want() and table.reads[-1] == (1 if digests_first else 3)
    table.write("a", 4, b"more")  # a new start
    table.delete("c", 2)
    assert table.ask(cache, devices, digests_first) == want()
    assert table.reads[-1] == (1 if digests_first else 3)  # (a, 4); without digests a, b at 2 and a at 4
    table.write("c", 2, b"back")
    assert table.ask(cache, devices, digests_first) == want()
    reads = len(table.reads)
    assert table.ask(cache, devices, digests_first) == want() and len(table.reads) == reads  # unchanged: nothing read


def test_a_cache_too_small_reads_again_whole():
    table, cache = _Table(), RollupCache(250)  # room for two rows
    for t in (1, 2, 3):
        table.write("a", t, b"x" * 20)
    assert table.ask(cache, ["a"]) == [table.rows[("a", t)] for t in (1, 2, 3)]
    assert cache.size <= 250
    table.write("a", 2, b"y" * 20)
    assert table.ask(cache, ["a"]) == [table.rows[("a", t)] for t in (1, 2, 3)] and table.reads == [3, 3]


def test_a_start_without_a_mark_is_checked_by_digest_even_when_read_whole():
    """Rows written before the write marks: their start is checked by digest every time,
    and only its changed rows are read, whatever the table's reading policy."""
    table, cache = _Table(), RollupCache(2**20)
    for d in "ab":
        table.write(d, 1, d.encode())
    table.marks.clear()
    assert table.ask(cache, ["a", "b"], digests_first=False) == [table.rows[("a", 1)], table.rows[("b", 1)]]
    table.rows[("a", 1)] = rollup.DayRow("a", 1, b"new", b"", b"")
    assert table.ask(cache, ["a", "b"], digests_first=False) == [table.rows[("a", 1)], table.rows[("b", 1)]]
    assert table.reads == [2, 1]
