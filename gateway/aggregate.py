"""Aggregate stage: a device's rollups (boucle.rollup), recomputed around its changed readings.

Whenever readings land (on time, late, replayed), the UTC days whose rollups they change
are recomputed, and so are the months holding those days. A day depends on its own
readings and its two neighbours (the reading before it, the first one after it), so the
days to redo run from the day of the reading before the earliest changed one to the day of
the reading after the newest one: a delta after a gap spreads over the gap's days, and a
changed last reading of a day moves the next day's baseline. The result does not depend on
arrival order, on restarts, or on which gateway process received which message.

Two ways to the same rows (`day_rows`, `boucle.rollup.month_row`):
- `roll_up`, the gateway's round: from the memory of what this process stored
  (gateway.recent) where it holds the days, all devices of the round at once (a few store
  requests a round, none reading back what was just written); checked against the store
  after writing, and a device whose memory the store contradicts is read from the store;
- `recompute_rollups`, from the store's readings, one device at a time: the fallback (late
  data older than the memory, a restart), `--rebuild-rollups`, and the reference in tests.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from boucle import rollup
from boucle.kinds import rated_per_hour
from boucle.registry import Device
from boucle.rollup import DAY, DayRow, MonthRow, Readings, row_digest
from boucle.storage import RECEIVED, Store
from gateway.recent import Marks, RecentReadings

FAR = 2**33
"""A ts beyond any reading's (InfluxDB's times end in 2262)."""
Span = tuple[str, int, int]
"""A dirty span: (device, oldest changed ts, newest changed ts)."""


def affected_days(t_prev: int, t_next: int) -> range:
    """Starts of the UTC days from the one holding `t_prev` (the reading before the earliest
    changed one, or that one) to the one holding `t_next` (the reading after the newest
    changed one, or that one)."""
    return range(rollup.day_start(t_prev), rollup.day_start(t_next) + DAY, DAY)


def day_rows(device: Device, days: range, readings: Readings) -> dict[int, DayRow]:
    """The day rows of these days from readings holding (at least) each day's readings and
    its two neighbours, oldest first."""
    t = readings.times
    rows = {}
    for day in days:
        lo = max(int(np.searchsorted(t, day)) - 1, 0)  # from the reading before the day
        hi = int(np.searchsorted(t, day + DAY)) + 1  # to the first one after it
        iv = rollup.day_intervals(device.kind, day, readings.take(lo, hi), rated_per_hour(device.kind, device))
        rows[day] = rollup.day_row(device.id, device.kind, iv)
    return rows


def month_rows(device: Device, rows: dict[int, DayRow], stored: Mapping[int, Sequence[DayRow]]) -> list[MonthRow]:
    """The month rows holding these new day rows: each month's stored day rows (`stored`,
    by month) with the new ones over them."""
    out = []
    for month in sorted({rollup.month_start(d) for d in rows}):
        days = {r.day: r for r in stored.get(month, ())}
        days.update((d, r) for d, r in rows.items() if rollup.month_start(d) == month)
        out.append(rollup.month_row(device.id, device.kind, month, list(days.values())))
    return out


def recompute_rollups(store: Store, device: Device, t_min: int, t_max: int) -> bool:
    """Recompute a device's day rows around changed readings in [t_min, t_max], and its month
    rows holding them, from the store's readings.

    Returns False when readings landed in those days meanwhile (another gateway process):
    the span stays dirty and is recomputed again, so the last write always sees them.
    """
    before = store.readings(device.id, t_min, t_min, rollup.FIELDS)
    t_prev = before[0].ts if before else t_min
    t_next = store.next_reading_ts(device.id, t_max) or t_max
    days = affected_days(t_prev, t_next)
    readings = Readings.of(store.readings(device.id, days.start, days.stop, rollup.FIELDS, after=True))
    rows = day_rows(device, days, readings)
    stored = {m: store.day_rollups([device.id], m, rollup.next_month(m)) for m in rollup.months(days.start, days.stop)}
    store.write_rollups(list(rows.values()), month_rows(device, rows, stored))
    t = readings.times
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


# --- the gateway's round ------------------------------------------------------------------


@dataclass
class _Plan:
    """A device rolled up from memory this round: its days, the readings they are made
    from, and the memory's marks then (what the store must still say afterwards)."""

    device: Device
    span: Span
    since: int
    days: range
    readings: Readings
    marks: Marks
    rows: dict[int, DayRow] | None = None


def roll_up(store: Store, recent: RecentReadings, devices: Mapping[str, Device], spans: Sequence[Span]) -> list[Span]:
    """One round of the aggregate stage over these dirty spans; the spans done.

    Devices whose memory holds the days (checked against the store, or reloaded from it
    when the store holds more) are rolled up together: their day rows computed from memory,
    the months' other day rows from memory or one read a month, everything written in a few
    requests, then the store's marks and day-row digests compared with what was used (a
    mismatch: another process wrote, the span stays dirty and the memory is not trusted
    until reloaded). The others go through `recompute_rollups`.
    """
    done = [s for s in spans if s[0] not in devices]  # no kind to roll up by: dropped
    spans = [s for s in spans if s[0] in devices]
    plans = _plans(store, recent, devices, spans)
    try:
        done += _from_memory(store, recent, plans)
    except Exception:
        for plan in plans:  # the store may hold some of the round's rows and not others
            recent.get(plan.device.id).days.clear()
        raise
    planned = {p.device.id for p in plans}
    for device_id, t_min, t_max in spans:
        if device_id not in planned:
            if device_id in recent:
                recent.get(device_id).days.clear()
            if recompute_rollups(store, devices[device_id], t_min, t_max):
                done.append((device_id, t_min, t_max))
            time.sleep(0.001)  # background work: let the spooler, parser and writer take the interpreter
    return done


def _plans(store: Store, recent: RecentReadings, devices: Mapping[str, Device], spans: Sequence[Span]) -> list[_Plan]:
    """The spans the memory can roll up: first taking as complete the memories of devices
    seen for the first time (the store holds as many readings since their first day, the
    same latest), reloading the others from the store."""
    with recent.lock:
        check = {}
        for device_id, t_min, _ in spans:
            if device_id not in recent:
                continue
            memory = recent.get(device_id)
            times = memory.table().times
            if memory.since is None and times.size:
                since = rollup.day_start(min(t_min, int(times[0])))
                if since >= rollup.day_start(int(times[-1])) - DAY:  # recent: worth remembering
                    check[device_id] = since
        marks = store.reading_marks(check) if check else {}
        reload = [(d, since) for d, since in check.items() if not recent.establish(d, since, marks[d])]
        seq = recent.seq
    fields = (*rollup.FIELDS, RECEIVED)
    for device_id, since in reload:  # the store holds more: another process, or this one before a restart
        stored = store.readings(device_id, since, FAR, fields)
        with recent.lock:
            recent.load(device_id, since, stored, seq)  # else (two readings of one ts): from the store
    plans = []
    with recent.lock:
        for span in spans:
            device_id, t_min, t_max = span
            memory = recent.get(device_id) if device_id in recent else None
            if memory is None or memory.since is None or t_min < memory.since:
                continue  # not remembered, or late data older than the memory: from the store
            t_prev, t_next = memory.neighbours(t_min, t_max)
            days = affected_days(t_min if t_prev is None else t_prev, t_max if t_next is None else t_next)
            if days.start < memory.since:
                continue  # the day before a gap is not remembered: from the store
            plans.append(_Plan(devices[device_id], span, memory.since, days, memory.readings(days.start, days.stop),
                               memory.marks(memory.since)))
    return plans


def _from_memory(store: Store, recent: RecentReadings, plans: list[_Plan]) -> list[Span]:
    if not plans:
        return []
    for plan in plans:
        plan.rows = day_rows(plan.device, plan.days, plan.readings)
        time.sleep(0)  # background work: let the spooler, parser and writer take the interpreter
    days: list[DayRow] = []
    # the months' other day rows: remembered, or read once a month for every device lacking them
    wanted: dict[int, list[str]] = defaultdict(list)
    for plan in plans:
        memory = recent.get(plan.device.id)
        for month in rollup.months(plan.days.start, plan.days.stop):
            if month not in memory.days:
                wanted[month].append(plan.device.id)
    for month, ids in wanted.items():
        got: dict[str, dict[int, tuple[DayRow, int]]] = {d: {} for d in ids}
        for row in store.day_rollups(ids, month, rollup.next_month(month)):
            got[row.device][row.day] = (row, row_digest(row[2:]))
        digested = store.rollup_digests("rollup_days", ids, month, rollup.next_month(month))
        for device_id, rows in got.items():
            recent.get(device_id).days[month] = rows
            # rows written before digests: written again with theirs, so that checks can read them
            days += [row for day, (row, _) in rows.items() if (device_id, day) not in digested]
    months = []
    for plan in plans:
        memory = recent.get(plan.device.id)
        stored = {m: [r for r, _ in memory.days[m].values()] for m in rollup.months(plan.days.start, plan.days.stop)}
        days += plan.rows.values()
        months += month_rows(plan.device, plan.rows, stored)
    store.write_rollups(days, _changed_only(store, months))
    for plan in plans:
        memory = recent.get(plan.device.id)
        for day, row in plan.rows.items():
            memory.days[rollup.month_start(day)][day] = (row, row_digest(row[2:]))
    return _check(store, recent, plans)


def _changed_only(store: Store, months: list[MonthRow]) -> list[MonthRow]:
    """The month rows whose stored row differs (one digest query a month and table): a month
    row holds the closed days (boucle.rollup), so a round of the current day leaves it as it
    is, and it changes once a day. A meter's slots row is written where it differs, its sums
    where they or the slots differ."""
    ids: dict[int, list[str]] = defaultdict(list)
    for m in months:
        ids[m.month].append(m.device)
    with_slots = {m.month for m in months if m.slots is not None}
    sums: dict[tuple[str, int], int | None] = {}
    slots: dict[tuple[str, int], int | None] = {}
    for month, devices in ids.items():
        sums.update(store.rollup_digests("rollup_months", devices, month, month + 1))
        if month in with_slots:
            slots.update(store.rollup_digests("rollup_month_slots", devices, month, month + 1))
    out = []
    for m in months:
        key = (m.device, m.month)
        if m.slots is not None and slots.get(key) == row_digest((m.slots, m.covered)):
            m = m._replace(slots=None, covered=None)
        if m.slots is not None or sums.get(key) != row_digest((m.days, m.events)):
            out.append(m)
    return out


def _check(store: Store, recent: RecentReadings, plans: list[_Plan]) -> list[Span]:
    """The plans' spans whose rollups were made from what the store holds: the same
    readings (marks) and the same other day rows (digests) as used."""
    by_month: dict[int, list[str]] = defaultdict(list)
    for plan in plans:
        for month in rollup.months(plan.days.start, plan.days.stop):
            by_month[month].append(plan.device.id)
    failed = set()
    for month, ids in by_month.items():
        stored: dict[str, dict[int, int | None]] = defaultdict(dict)
        for (device_id, day), digest in store.rollup_digests("rollup_days", ids, month, rollup.next_month(month)).items():
            stored[device_id][day] = digest
        for device_id in ids:
            memory = recent.get(device_id)
            if stored.get(device_id, {}) != {day: digest for day, (_, digest) in memory.days[month].items()}:
                failed.add(device_id)  # another process rewrote a day of the month meanwhile
                del memory.days[month]
    done = []
    with recent.lock:
        marks = store.reading_marks({p.device.id: p.since for p in plans})
        for plan in plans:
            memory = recent.get(plan.device.id)
            now = Marks.of(marks[plan.device.id])
            if memory.since != plan.since or memory.marks(plan.since) != now:
                memory.since = None  # the store holds other readings than the memory: reload it
            if now == plan.marks and plan.device.id not in failed:
                done.append(plan.span)
                newest = plan.readings.times
                if newest.size and memory.since is not None:
                    memory.trim(rollup.day_start(int(newest[-1])))
    return done
