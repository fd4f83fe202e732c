"""Local calendars: opening hours as UTC intervals (DST-correct) and annualisation."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

from boucle.registry import parse_opening_hours
from boucle.rollup import span_edges

_END_OF_DAY = time(23, 59, 59)


@lru_cache(maxsize=256)
def open_intervals(opening_hours: str, tz: ZoneInfo, start: int, end: int) -> tuple[tuple[int, int], ...]:
    """The UTC [open, close) intervals of a site's opening hours within [start, end).

    Each local opening time is converted with the zone's offset of that day, so a day of
    DST change has its true length. "24/7" (and a span closing at 23:59:59) run to midnight.
    Cached: sites share a few opening schedules, and a year of one is 800 time conversions.
    """
    week = parse_opening_hours(opening_hours)
    first = datetime.fromtimestamp(start, tz).date() - timedelta(days=1)
    last = datetime.fromtimestamp(end, tz).date() + timedelta(days=1)
    out: list[tuple[int, int]] = []
    day = first
    while day <= last:
        for opens, closes in week.get(day.weekday(), []):
            s = _utc(day, opens, tz)
            e = _utc(day + timedelta(days=1), time(0), tz) if closes == _END_OF_DAY else _utc(day, closes, tz)
            s, e = max(s, start), min(e, end)
            if s < e:
                if out and out[-1][1] >= s:
                    out[-1] = (out[-1][0], max(out[-1][1], e))
                else:
                    out.append((s, e))
        day += timedelta(days=1)
    return tuple(out)


@lru_cache(maxsize=64)
def open_shares(opening_hours: str, tz: ZoneInfo, start: int, end: int) -> np.ndarray:
    """Per interval of [start, end) (boucle.rollup.span_edges: UTC quarter-hours cut at the
    span's edges), the share of it inside the opening hours (read-only; cached like
    open_intervals)."""
    spans = np.array(open_intervals(opening_hours, tz, start, end), dtype=np.float64).reshape(-1, 2)
    edges = span_edges(start, end).astype(np.float64)
    if not spans.size:
        shares = np.zeros(edges.size - 1)
    else:
        # open seconds counted from the start: piecewise linear, flat while closed
        opened = np.concatenate([[0.0], np.cumsum(spans[:, 1] - spans[:, 0])])
        counted = np.column_stack([opened[:-1], opened[1:]]).reshape(-1)
        shares = np.diff(np.interp(edges, spans.reshape(-1), counted)) / np.diff(edges)
    shares.flags.writeable = False
    return shares


def _utc(day: date, at: time, tz: ZoneInfo) -> int:
    return int(datetime.combine(day, at, tzinfo=tz).timestamp())


def years_in(start: int, end: int, tz: ZoneInfo) -> float:
    """Length of [start, end) in calendar years of the zone: each year counts its own length,
    so a full leap year is exactly 1 and its 29 February is 1/366."""
    total = 0.0
    year = datetime.fromtimestamp(start, tz).year
    while True:
        y0 = _utc(date(year, 1, 1), time(0), tz)
        y1 = _utc(date(year + 1, 1, 1), time(0), tz)
        if y0 >= end:
            break
        overlap = min(end, y1) - max(start, y0)
        if overlap > 0:
            total += overlap / (y1 - y0)
        year += 1
    return total
