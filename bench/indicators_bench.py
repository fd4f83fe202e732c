"""Indicators benchmark: the full catalogue for one territory over a long period, from the
gateway's rollups (boucle.rollup: month rows, day rows) on the embedded store and on
InfluxDB (the same rows, the same run), beside the same query answered from raw readings.

    .venv/bin/python -m bench.indicators_bench --devices 1000 --days 365

Two data sets, both synthetic (deterministic seeds):
- rollups at full size: `devices` devices (generated registry, 10 a site: a grid meter, a PV
  meter, machine sub-meters and scale bins) over `days` days from 2025-01-01 UTC (and the
  day before, where the same days in Paris time start), written through the store API
  into SQLite and into a real InfluxDB (tests/servers.py starts one) as the gateway would
  leave them: a month row per device and month, day rows for the first
  and last days (what a period in local time reads as partial days). A year of raw readings
  of 1,000 devices (525 million at one a minute) is too big to generate here, and so are its
  365,000 day rows: the month rows are made from synthetic 15-min arrays with numpy, and one
  device-month is checked equal to `boucle.rollup.month_row` over the day rows of the same
  arrays;
- raw readings at a size the raw path can answer: `raw_devices` devices over `raw_days`
  days, one reading a minute, stored, then rolled up by the gateway's own
  `recompute_rollups`; the same query is timed there from raw readings and from rollups
  (they give the same values: tests/indicators/test_one_truth.py), and the raw time per
  device-day extrapolated to the full size.

Timings: `first` is the first computation on a fresh connection (the OS page cache is warm:
the data was just written); p50/p99 over `repeats` fresh computations; `cached` is the
API's ResultCache hit per (query, data version). InfluxDB is read as the API reads it,
through its rollup cache (boucle/storage/rollup_cache.py): `first` fills it, the repeats
find the data version unchanged; `after_write` times each computation after a gateway
round of every device (its current day, the data's last one, open, with other values: that
day's rows written again; the month rows, which hold the closed days, stay), so the cache
reads the write marks, digests and rows of what changed; `after_month_rewrite` the same after late data changed
every day of the month of every device (its slots rows change too); `no_cache` reads every
row every time. SQLite is timed after the same writes. Nothing here is a test: numbers are
printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from boucle import rollup
from boucle.protocol import Reading
from boucle.registry import Device, Registry
from boucle.rollup import DAY, SLOT, SLOTS_A_DAY, Intervals, MonthRow
from boucle.storage import Store, open_store
from boucle.storage.sqlite import SQLiteStore
from cloud.cache import ResultCache
from cloud.indicators import Period, Scope, compute_indicators
from gateway.aggregate import recompute_rollups
from simulator.generate import generate_registry

START = 1735689600  # 2025-01-01 00:00 UTC
RAW_START = 1738368000  # 2025-02-01 00:00 UTC: a whole month of month rows for the raw set
READING_S = 60


def bench_registry(devices: int) -> Registry:
    """One territory of about `devices` devices, 10 a site (simulator.generate)."""
    import tomllib

    sites = max(1, math.ceil(devices / 10))
    return Registry.model_validate(tomllib.loads(generate_registry(1, sites, min(10, devices))))


# --- synthetic energy and waste ---------------------------------------------------------


def _power_w(device: Device, t: np.ndarray, rng: np.random.Generator, site_grid_w: float = 60_000
             ) -> np.ndarray:
    """Mean power at instants t: office-like import, seasonal PV, machines on and off (a
    machine is a sub-meter: it draws at most a tenth of its site's grid rating)."""
    hour = (t % DAY) / 3600
    rated = device.rated_power_w or 5000
    if device.channel == "pv_production":
        season = 0.6 + 0.4 * np.cos((t / DAY - 172) / 365.25 * 2 * math.pi)
        sun = np.clip(np.sin((hour - 6) / 12 * math.pi), 0, None)
        return rated * 0.8 * season * sun * rng.uniform(0.5, 1.0, t.size)
    if device.channel == "load":
        return np.where(rng.random(t.size) < 0.2, min(rated * 0.8, site_grid_w / 10), 5.0)
    working = ((hour > 7) & (hour < 19) & ((t // DAY + 3) % 7 < 5)).astype(np.float64)
    return rated * (0.08 + 0.35 * working * rng.uniform(0.4, 1.0, t.size))


def _bin_arrays(device: Device, t: np.ndarray, step_s: int, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(deposits g per step, emptied mask, level just before each step) of a scale bin
    emptied every few days at 07:00 UTC."""
    per_day = (device.capacity_kg or 120) * 1000 * rng.uniform(0.1, 0.3)
    steps_a_day = DAY // step_s
    deposits = np.round(rng.exponential(per_day / steps_a_day * 3, t.size) * (rng.random(t.size) < 1 / 3))
    every = int(rng.integers(2, 8))
    emptied = ((t // DAY) % every == 0) & (t % DAY == 7 * 3600)
    total = np.cumsum(deposits)
    segment = np.cumsum(emptied)
    at_empty = np.concatenate([[0.0], total[emptied]])
    level_after = total - at_empty[segment]  # level at the end of each step
    before = np.concatenate([[0.0], level_after[:-1]])
    return deposits, emptied, before


def _grid_w(registry: Registry) -> dict[str, float]:
    return {d.site: d.rated_power_w or 60_000 for d in registry.devices if d.channel == "grid_import"}


def _slots(device: Device, start: int, end: int, seed: int, site_grid_w: float) -> dict[str, np.ndarray]:
    """A device's 15-min intervals as arrays: readings, mWh or deposited g, emptyings."""
    rng = np.random.default_rng(seed)
    t = np.arange(start, end, SLOT, dtype=np.int64)
    # slots are covered but the last one: the newest reading is inside it (the data's last day
    # is the device's current day, open, as at the gateway)
    out = {"start": t, "received": np.full(t.size, SLOT // READING_S, dtype=np.int64), "covered": t < end - SLOT}
    if device.kind == "energy":
        wh = _power_w(device, t + SLOT // 2, rng, site_grid_w) * SLOT / 3600
        out["amount"] = np.round(wh * rollup.MWH_PER_WH).astype(np.int64)
    else:
        deposits, emptied, before = _bin_arrays(device, t, SLOT, rng)
        out["amount"], out["emptied"], out["before"] = deposits.astype(np.int64), emptied, before
    return out


def _day_intervals(device: Device, slots: dict[str, np.ndarray], day: int) -> Intervals:
    """One day of the synthetic arrays as the gateway's intervals."""
    i = int(np.searchsorted(slots["start"], day))
    part = slice(i, i + SLOTS_A_DAY)
    meter = device.kind == "energy"
    emptied = np.zeros((0, 3))
    if not meter:
        e = slots["emptied"][part]
        emptied = np.column_stack([slots["start"][part][e] + 1, slots["before"][part][e], np.full(int(e.sum()), np.nan)])
    return Intervals(rollup.day_edges(day), slots["received"][part], np.full(SLOTS_A_DAY, 0 if meter else rollup.WEIGHT,
                                                                                       dtype=np.uint8),
                     slots["amount"][part], slots["covered"][part], emptied, np.zeros((0, 2), dtype=np.int64))


def _month(device: Device, month: int, slots: dict[str, np.ndarray]) -> MonthRow:
    """What boucle.rollup.month_row makes of the month's day rows, with numpy (no row
    objects); days of the month outside the data have nothing, as at the gateway."""
    lo = int(np.searchsorted(slots["start"], month))
    hi = int(np.searchsorted(slots["start"], rollup.next_month(month)))
    days = rollup.days_in(month)
    first_day = (int(slots["start"][lo]) - month) // DAY
    span = slice(first_day, first_day + (hi - lo) // SLOTS_A_DAY)
    meter = device.kind == "energy"
    sums = np.zeros(days, dtype=rollup.DAY_CELL)
    for name in ("received", "amount"):
        sums[name][span] = slots[name][lo:hi].reshape(-1, SLOTS_A_DAY).sum(axis=1)
    covered = np.zeros(days * SLOTS_A_DAY, dtype=bool)
    covered[span.start * SLOTS_A_DAY:span.stop * SLOTS_A_DAY] = slots["covered"][lo:hi]
    # the days the month row holds: through the last closed one (boucle.rollup.closed_days)
    day_has = np.zeros(days, dtype=bool)
    day_has[span] = True
    held = rollup.closed_days(np.flatnonzero(day_has), covered.reshape(days, SLOTS_A_DAY)[day_has, -1],
                              sums["received"])
    events = b""
    if not meter:
        sums["measured"][span] = rollup.WEIGHT
        inside = slots["start"][lo:hi] < month + held * DAY
        e = slots["emptied"][lo:hi] & inside
        emptied = np.column_stack([slots["start"][lo:hi][e] + 1, slots["before"][lo:hi][e], np.full(int(e.sum()), np.nan)])
        events = rollup.events_blob(emptied, np.zeros((0, 2), dtype=np.int64))
    row = MonthRow(device.id, month, sums[:held].tobytes(), events)
    if not meter:
        return row
    amount = np.zeros(days * SLOTS_A_DAY, dtype=np.int32)
    amount[span.start * SLOTS_A_DAY:span.stop * SLOTS_A_DAY] = slots["amount"][lo:hi]
    cells = held * SLOTS_A_DAY
    return row._replace(slots=amount[:cells].tobytes(), covered=np.packbits(covered[:cells]).tobytes())


def write_rollups(store: Store, registry: Registry, start: int, end: int, every_day: bool = False) -> dict:
    """What the gateway leaves for [start, end) (whole UTC days): a month row per device and
    month, and day rows for the first and last days (what a period in local time reads as
    partial days), or with `every_day` for every day as the gateway does (365,000 rows for
    a year of 1,000 devices: too many for the year benchmark)."""
    touched = rollup.months(start, end)
    months = days = 0
    bin_checked = False
    grid = _grid_w(registry)
    for n, device in enumerate(registry.devices):
        slots = _slots(device, start, end, seed=n, site_grid_w=grid.get(device.site, 60_000))
        edge_days = [rollup.day_row(device.id, device.kind, _day_intervals(device, slots, d))
                     for d in (range(start, end, DAY) if every_day else (start, end - DAY))]
        rows = [_month(device, m, slots) for m in touched]
        store.write_rollups(edge_days, rows)
        months += len(rows)
        days += len(edge_days)
        if n == 0 or (device.kind == "waste" and not bin_checked):
            # the numpy month rows are what the owner module makes of the same days (a meter
            # and a bin, the last month: whole or not, it has data from its first day)
            m = touched[-1]
            day_rows = [rollup.day_row(device.id, device.kind, _day_intervals(device, slots, d))
                        for d in range(m, min(end, rollup.next_month(m)), DAY)]
            if rollup.month_row(device.id, device.kind, m, day_rows) != rows[-1]:
                raise AssertionError(f"synthetic month row of {device.id} differs from boucle.rollup.month_row")
            bin_checked = device.kind == "waste"
    return {"month_rows": months, "day_rows": days}


def current_month(registry: Registry, start: int, end: int) -> dict[str, dict[str, np.ndarray]]:
    """Each device's synthetic arrays of the last month of [start, end), as `write_rollups`
    wrote them (what `rewrite_current_day` starts from)."""
    month = max(start, rollup.month_start(end - 1))
    grid = _grid_w(registry)
    out = {}
    for n, device in enumerate(registry.devices):
        slots = _slots(device, start, end, seed=n, site_grid_w=grid.get(device.site, 60_000))
        at = int(np.searchsorted(slots["start"], month))
        out[device.id] = {name: a[at:].copy() for name, a in slots.items()}
    return out


def rewrite_current_day(store: Store, registry: Registry, month: dict[str, dict[str, np.ndarray]], end: int,
                        seed: int, whole_month: bool = False) -> int:
    """What a gateway round writes for every device: the current (last) day's rows, the day's
    amounts changed (other values, seeded); the month rows hold the closed days only, so the
    gateway leaves them as they are (gateway.aggregate writes a month row only where it
    differs). With `whole_month` every day of the month changed (late data in each day): the
    month's rows written again too. One write; the rows written."""
    rng = np.random.default_rng(seed)
    days, months = [], []
    for device in registry.devices:
        slots = dict(month[device.id])
        changed = slots["start"] >= (slots["start"][0] if whole_month else end - DAY)
        amount = slots["amount"].copy()
        amount[changed] = np.round(amount[changed] * rng.uniform(0.5, 1.5, int(changed.sum())))
        slots["amount"] = amount
        days.append(rollup.day_row(device.id, device.kind, _day_intervals(device, slots, end - DAY)))
        if whole_month:
            months.append(_month(device, int(slots["start"][0]), slots))
    store.write_rollups(days, months)
    return len(days) + len(months)


def write_raw(store: SQLiteStore, registry: Registry, start: int, end: int) -> int:
    """One reading a minute per device (counters, bin weights), then the gateway's rollups."""
    total = 0
    grid = _grid_w(registry)
    for n, device in enumerate(registry.devices):
        rng = np.random.default_rng(10_000 + n)
        t = np.arange(start, end, READING_S, dtype=np.int64)
        if device.kind == "energy":
            counter = np.floor(np.cumsum(_power_w(device, t, rng, grid.get(device.site, 60_000)) * READING_S / 3600))
            values = [{"energy_wh": int(v)} for v in counter]
        else:
            deposits, emptied, before = _bin_arrays(device, t, READING_S, rng)
            level = np.where(emptied, 0.0, before) + deposits
            weight = np.round(level + rng.normal(0, 15, t.size))
            values = [{"weight_g": int(w)} for w in weight]
        store.write_readings([Reading(device.id, 1, i, int(ts), v) for i, (ts, v) in enumerate(zip(t, values))],
                             received=float(end))
        assert recompute_rollups(store, device, int(t[0]), int(t[-1]))
        total += t.size
    return total


# --- timing -------------------------------------------------------------------------------


def timing_stats(ms: list[float]) -> dict:
    """p50, p99 (nearest rank), min and count of timings in ms."""
    ordered = sorted(ms)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    return {"p50_ms": round(statistics.median(ordered), 1), "p99_ms": round(p99, 1),
            "min_ms": round(ordered[0], 1), "runs": len(ordered)}


def time_query(open_: Callable[[], Store], registry: Registry, period: Period, raw: bool, repeats: int,
               before_each: Callable[[Store, int], object] | None = None) -> dict:
    """First run on a fresh store object, then `repeats` fresh computations (each after
    `before_each(store, i)` when given, not timed), then cache hits.

    Wall time, and the process's CPU time (less sensitive to other load on the machine)."""
    scope = Scope("territory", (registry.territories[0].id,))
    store = open_()
    try:
        t0 = time.perf_counter()
        values = compute_indicators(store, registry, scope, period, raw=raw)
        first = (time.perf_counter() - t0) * 1000
        runs, cpu = [], []
        for i in range(repeats):
            if before_each is not None:
                before_each(store, i)
            t0, c0 = time.perf_counter(), time.process_time()
            values = compute_indicators(store, registry, scope, period, raw=raw)
            runs.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        cache = ResultCache(64)
        key = ("indicators", scope, period)
        cache.get_or_compute(key, store.data_version(), registry,
                             lambda: compute_indicators(store, registry, scope, period, raw=raw))
        hits = []
        for _ in range(max(repeats, 20)):
            t0 = time.perf_counter()
            _, hit = cache.get_or_compute(key, store.data_version(), registry, lambda: None)
            hits.append((time.perf_counter() - t0) * 1000)
            assert hit
    finally:
        store.close()
    out = {"first_ms": round(first, 1), **timing_stats(runs), "cpu_p50_ms": round(statistics.median(cpu), 1),
           "cached_p50_ms": round(statistics.median(hits), 3)}
    out["values"] = {v.id: v.value for v in values}
    return out


def _on_influxdb(registry: Registry, period: Period, local: Period, repeats: int, folder: Path,
                 sqlite: Callable[[], Store]) -> dict:
    """The same rollups in a real InfluxDB (tests/servers.py), timed as the API reads them
    (rollup cache), after writes (the cache reads what changed), and without the cache;
    SQLite after the same writes, in the same run."""
    from tests.servers import InfluxDB

    server = InfluxDB(folder / "influxdb").start()
    try:
        url = f"influx+http://127.0.0.1:{server.port}/bench"
        store = open_store(url)
        t0 = time.perf_counter()
        write_rollups(store, registry, period.start - DAY, period.end)
        written_s = time.perf_counter() - t0
        store.close()
        cached = partial(open_store, url, rollup_cache_bytes=1 << 30)
        out = {"write_s": round(written_s, 1),
               "rollups": time_query(cached, registry, period, False, repeats),
               "rollups_local_time": time_query(cached, registry, local, False, repeats),
               "no_cache": time_query(partial(open_store, url), registry, period, False, max(3, repeats // 4))}

        month = current_month(registry, period.start - DAY, period.end)

        def rewrite(store: Store, i: int, whole_month: bool = False) -> None:
            rewrite_current_day(store, registry, month, period.end, seed=1 + i, whole_month=whole_month)

        # the same writes on both stores: SQLite first, then InfluxDB (whose values are compared)
        out["sqlite_after_write"] = time_query(sqlite, registry, period, False, repeats, rewrite)
        out["after_write"] = time_query(cached, registry, period, False, repeats, rewrite)
        same = out["sqlite_after_write"].pop("values") == out["after_write"]["values"]
        out["after_write_values_equal_sqlite"] = same
        # late data in every day of the month (every device): the month's slots rows change too
        late = partial(rewrite, whole_month=True)
        few = max(3, repeats // 4)
        out["sqlite_after_month_rewrite"] = time_query(sqlite, registry, period, False, few, late)
        out["after_month_rewrite"] = time_query(cached, registry, period, False, few, late)
        same = out["sqlite_after_month_rewrite"].pop("values") == out["after_month_rewrite"]["values"]
        out["after_month_rewrite_values_equal_sqlite"] = same
        return out
    finally:
        server.stop()


def bench_indicators(devices: int, days: int, workdir: Path | str | None = None, repeats: int = 20,
                     raw_devices: int = 50, raw_days: int = 28, influx: bool = True) -> dict:
    """The full indicator set of one territory of `devices` devices over `days` days, from
    rollups on SQLite and (with `influx`) on InfluxDB, beside the same query from raw
    readings (measured on raw_devices × raw_days, at most the full size, and extrapolated
    per device-day)."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        folder = Path(tmp)
        registry = bench_registry(devices)
        period = Period(START, START + days * DAY)
        t0 = time.perf_counter()
        store = SQLiteStore(folder / "rollups.db")
        # from the day before: the year in local time starts then (Paris: 23:00 UTC)
        written = write_rollups(store, registry, period.start - DAY, period.end)
        store.close()
        generate_s = time.perf_counter() - t0
        sqlite = partial(SQLiteStore, folder / "rollups.db")
        rollups = time_query(sqlite, registry, period, False, repeats)
        # the same days in the territory's time zone (Paris: UTC+1 in winter): partial UTC days
        # at both edges, from the day rows of those days
        local = Period(period.start - 3600, period.end - 3600)
        rollups_local = time_query(sqlite, registry, local, False, repeats)
        rollups_local.pop("values")
        on_influx = _on_influxdb(registry, period, local, repeats, folder, sqlite) if influx else None
        if on_influx is not None:
            differ = {i: (rollups["values"][i], on_influx["rollups"]["values"][i]) for i in rollups["values"]
                      if rollups["values"][i] != on_influx["rollups"]["values"].get(i)}
            on_influx["values_differing_sqlite_vs_influxdb"] = differ
            for timing in ("rollups", "rollups_local_time", "no_cache", "after_write", "after_month_rewrite"):
                on_influx[timing].pop("values")
            on_influx["ratio_p50"] = round(on_influx["rollups"]["p50_ms"] / rollups["p50_ms"], 2)
            on_influx["ratio_p50_local_time"] = round(on_influx["rollups_local_time"]["p50_ms"]
                                                      / rollups_local["p50_ms"], 2)
            for timing in ("after_write", "after_month_rewrite"):
                on_influx[f"ratio_p50_{timing}"] = round(on_influx[timing]["p50_ms"]
                                                         / on_influx[f"sqlite_{timing}"]["p50_ms"], 2)

        raw_devices, raw_days = min(raw_devices, devices), min(raw_days, days)
        raw_registry = bench_registry(raw_devices)
        raw_period = Period(RAW_START, RAW_START + raw_days * DAY)
        store = SQLiteStore(folder / "raw.db")
        t0 = time.perf_counter()
        readings = write_raw(store, raw_registry, raw_period.start - 3600, raw_period.end)
        store.close()
        raw_write_s = time.perf_counter() - t0
        small = max(3, min(repeats, 5))
        same = {name: time_query(partial(SQLiteStore, folder / "raw.db"), raw_registry, raw_period, raw, small)
                for name, raw in [("raw", True), ("rollups", False)]}

    device_days = len(registry.devices) * days
    raw_device_days = len(raw_registry.devices) * raw_days
    per_device_day_ms = same["raw"]["p50_ms"] / raw_device_days
    raw = {"p50_ms": round(per_device_day_ms * device_days, 1),
           "p99_ms": round(same["raw"]["p99_ms"] / raw_device_days * device_days, 1),
           "extrapolated": raw_device_days != device_days,
           "measured_p50_ms": same["raw"]["p50_ms"], "measured_devices": len(raw_registry.devices),
           "measured_days": raw_days, "per_device_day_ms": round(per_device_day_ms, 3)}
    differ = {i: (same["raw"]["values"][i], same["rollups"]["values"][i]) for i in same["raw"]["values"]
              if same["raw"]["values"][i] != same["rollups"]["values"][i]}
    for timing in (rollups, *same.values()):
        timing.pop("values")
    return {
        "devices": len(registry.devices), "days": days, "load_average": round(os.getloadavg()[0], 2),
        "cores": os.cpu_count(), "period": [period.start, period.end],
        "rollups": rollups, "rollups_local_time": rollups_local, "influxdb": on_influx, "raw": raw, **written,
        "generate_s": round(generate_s, 1),
        "same_query": {"devices": len(raw_registry.devices), "days": raw_days, "readings": readings,
                       "write_and_aggregate_s": round(raw_write_s, 1), **same,
                       "speedup_rollups_vs_raw": round(same["raw"]["p50_ms"] / same["rollups"]["p50_ms"], 1),
                       "values_differing_raw_vs_rollups": differ},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--raw-devices", type=int, default=50)
    parser.add_argument("--raw-days", type=int, default=28)
    parser.add_argument("--workdir", default=None, help="where the temporary stores go (default: system temp)")
    parser.add_argument("--no-influxdb", action="store_true", help="SQLite only (no influxd needed)")
    args = parser.parse_args(argv)
    got = bench_indicators(args.devices, args.days, args.workdir, args.repeats, args.raw_devices, args.raw_days,
                           influx=not args.no_influxdb)
    json.dump(got, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
