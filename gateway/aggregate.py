"""Aggregate stage: a device's rollups (boucle.rollup), recomputed from its stored readings.

Whenever readings land (on time, late, replayed), the UTC days whose rollups they change
are recomputed from the stored readings, and so are the months holding those days. A day
depends on its own readings and its two neighbours (the reading before it, the first one
after it), so the days to redo run from the day of the reading before the earliest
changed one to the day of the reading after the newest one: a delta after a gap spreads
over the gap's days, and a changed last reading of a day moves the next day's baseline.
The result does not depend on arrival order, on restarts, or on which gateway process
received which message: recomputing gives the same rows.
"""

from __future__ import annotations

import numpy as np

from boucle import rollup
from boucle.registry import Device
from boucle.rollup import DAY, DayRow, Readings
from boucle.storage import Store


def affected_days(t_prev: int, t_next: int) -> range:
    """Starts of the UTC days from the one holding `t_prev` (the reading before the earliest
    changed one, or that one) to the one holding `t_next` (the reading after the newest
    changed one, or that one)."""
    return range(rollup.day_start(t_prev), rollup.day_start(t_next) + DAY, DAY)


def recompute_rollups(store: Store, device: Device, t_min: int, t_max: int) -> bool:
    """Recompute a device's day rows around changed readings in [t_min, t_max], and its month
    rows holding them.

    Returns False when readings landed in those days meanwhile (another gateway process):
    the span stays dirty and is recomputed again, so the last write always sees them.
    """
    before = store.readings(device.id, t_min, t_min, rollup.FIELDS)
    t_prev = before[0].ts if before else t_min
    t_next = store.next_reading_ts(device.id, t_max) or t_max
    days = affected_days(t_prev, t_next)
    stored = store.readings(device.id, days.start, days.stop, rollup.FIELDS, after=True)
    readings = Readings.of(stored)
    t = readings.times
    rows: dict[int, DayRow] = {}
    for day in days:
        lo = max(int(np.searchsorted(t, day)) - 1, 0)  # from the reading before the day
        hi = int(np.searchsorted(t, day + DAY)) + 1  # to the first one after it
        iv = rollup.day_intervals(device.kind, day, readings.take(lo, hi), device.rated_power_w)
        rows[day] = rollup.day_row(device.id, device.kind, iv)
    months = []
    for month in rollup.months(days.start, days.stop):
        month_days = {r.day: r for r in store.day_rollups([device.id], month, rollup.next_month(month))}
        month_days.update((d, r) for d, r in rows.items() if month <= d < rollup.next_month(month))
        months.append(rollup.month_row(device.id, device.kind, month, list(month_days.values())))
    store.write_rollups(list(rows.values()), months)
    used = int(((t >= days.start) & (t < days.stop)).sum())
    return store.reading_counts([device.id], days.start, days.stop)[device.id] == used


def rebuild_rollups(store: Store, devices: list[Device], progress=None) -> int:
    """Recompute every stored day of these devices, a month at a time (a store written by
    an older gateway, or rollups to redo); the number of devices done. `progress(device)` is
    called after each one."""
    done = 0
    for device in devices:
        first = store.next_reading_ts(device.id, -1)
        seen = store.last_seen([device.id]).get(device.id)
        if first is not None and seen is not None:
            for month in rollup.months(first, seen[0] + 1):
                lo, hi = max(first, month), min(seen[0], rollup.next_month(month) - 1)
                recompute_rollups(store, device, lo, hi)
            done += 1
        if progress is not None:
            progress(device)
    return done
