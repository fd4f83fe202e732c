"""Collection rounds, pure: a bin's fill forecast, the next round, and a day's plan.

A bin's **forecast** is a straight line from its latest fill at its recent fill rate: the
fill deposited over its recent readings (the indicators' deposit accounting, emptyings and
sensor noise left out) over the time they span. A **round** runs on the
territory's `collection.round_days` at `round_time` (local). The **plan** of a day empties
the bins whose forecast reaches the threshold before the round after that day's: left
until then they would pass it. The others can wait, each with when it would reach it.
docs/api.md "Collection rounds".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

from boucle.accounting import fill_events, waste_events
from boucle.geo import distance_km
from boucle.registry import CollectionSettings

DAY_S = 86400


@dataclass(frozen=True)
class BinForecast:
    """A bin's latest fill and its fill rate."""

    device: str
    ts: int
    """When the latest fill was read."""
    fill_pct: float
    rate_pct_per_day: float

    def fill_at(self, ts: float) -> float:
        """The forecast fill at `ts` (no cap: above 100 means it overflowed)."""
        return self.fill_pct + self.rate_pct_per_day * max(0.0, ts - self.ts) / DAY_S

    def reaches(self, threshold_pct: float) -> float | None:
        """When the forecast reaches `threshold_pct` (now if it already has), None if never."""
        if self.fill_pct >= threshold_pct:
            return float(self.ts)
        if self.rate_pct_per_day <= 0:
            return None
        return self.ts + (threshold_pct - self.fill_pct) / self.rate_pct_per_day * DAY_S


def fill_forecast(device: str, samples: Sequence[tuple[int, float]]) -> BinForecast | None:
    """A bin's forecast from its (ts, fill %) readings, oldest first; None without two readings.
    Its rate: the fill deposited (boucle.accounting.fill_events: rises past the noise band,
    emptyings left out) over the time the readings span."""
    if len(samples) < 2:
        return None
    times = [ts for ts, _ in samples]
    deposited = fill_events(times, [fill for _, fill in samples]).deposited
    span = times[-1] - times[0]
    rate = deposited / span * DAY_S if span > 0 else 0.0
    return BinForecast(device, int(times[-1]), float(samples[-1][1]), rate)


def weight_forecast(device: str, samples: Sequence[tuple[int, float]], capacity_kg: float) -> BinForecast | None:
    """A scale bin's forecast from its (ts, weight g) readings against its capacity: the
    mass deposited (boucle.accounting.waste_events) over the time the readings span."""
    if len(samples) < 2 or capacity_kg <= 0:
        return None
    times = [ts for ts, _ in samples]
    deposited_g = waste_events(times, [g for _, g in samples]).deposited_g
    span = times[-1] - times[0]
    per_pct = capacity_kg * 10  # grams in one point of fill
    rate = deposited_g / per_pct / span * DAY_S if span > 0 else 0.0
    return BinForecast(device, int(times[-1]), float(samples[-1][1]) / per_pct, rate)


def round_at(day: date, settings: CollectionSettings, tz: ZoneInfo) -> int:
    """The UTC second a round of `day` (local) starts."""
    hh, mm = map(int, settings.round_time.split(":"))
    return int(datetime(day.year, day.month, day.day, hh, mm, tzinfo=tz).timestamp())


def next_round(after: float, settings: CollectionSettings, tz: ZoneInfo) -> int:
    """The start of the first round strictly after `after`."""
    weekdays = settings.weekdays()
    day = datetime.fromtimestamp(after, tz).date()
    for _ in range(15):
        if day.weekday() in weekdays:
            ts = round_at(day, settings, tz)
            if ts > after:
                return ts
        day += timedelta(days=1)
    raise ValueError(f"no round day in {settings.round_days!r}")  # unreachable: days are checked on load


def next_rounds(times: Sequence[float] | np.ndarray, settings: CollectionSettings, tz: ZoneInfo) -> np.ndarray:
    """`next_round` of each of these times, sorted or not, from a table of the round starts
    of the months they span (a round start a day instead of a search a time: a year's
    emptyings of a territory's bins are tens of thousands; the bins share the table)."""
    times = np.asarray(times, dtype=np.float64)
    if not times.size:
        return np.zeros(0, dtype=np.int64)
    first, last = (datetime.fromtimestamp(t, tz).date() for t in (float(times.min()), float(times.max())))
    starts = _round_starts(first.replace(day=1), (last.replace(day=1) + timedelta(days=32)).replace(day=1),
                           settings.round_days, settings.round_time, tz)
    # the first start after t: round days run in the order of their starts (the same local time)
    return starts[np.searchsorted(starts, times, side="right")]


@lru_cache(maxsize=64)
def _round_starts(first: date, end: date, round_days: str, round_time: str, tz: ZoneInfo) -> np.ndarray:
    """The round starts of the local days from `first` to `end` and 15 days more."""
    settings = CollectionSettings(round_days=round_days, round_time=round_time)
    weekdays = settings.weekdays()
    starts, day = [], first
    while day < end + timedelta(days=15):
        if day.weekday() in weekdays:
            starts.append(round_at(day, settings, tz))
        day += timedelta(days=1)
    if not starts:
        raise ValueError(f"no round day in {round_days!r}")  # unreachable: days are checked on load
    table = np.array(starts, dtype=np.int64)
    table.flags.writeable = False  # shared by the callers (cached)
    return table


@dataclass(frozen=True)
class PlannedBin:
    device: str
    site: str
    stream: str
    fill_pct: float | None
    """The fill forecast at the round (None: no forecast, too few readings)."""
    at_next_round_pct: float | None
    """The fill forecast at the round after, had it waited."""
    reaches_threshold: float | None
    """When the forecast reaches the threshold (UTC seconds), None if never or unknown."""
    distance_km: float | None
    """From the territory's depot (None without a depot)."""


@dataclass(frozen=True)
class RoundPlan:
    round_ts: int
    next_round_ts: int
    threshold_pct: float
    collect: list[PlannedBin]
    """To empty at this round, nearest the depot first."""
    wait: list[PlannedBin]
    """Can wait until the next round, soonest due first."""
    unknown: list[PlannedBin]
    """Bins without a forecast (fewer than two fill readings in the lookback)."""


@dataclass(frozen=True)
class BinPlace:
    device: str
    site: str
    stream: str
    location: tuple[float, float]


def plan_round(bins: Sequence[BinPlace], forecasts: dict[str, BinForecast], round_ts: int, next_round_ts: int,
               threshold_pct: float, depot: tuple[float, float] | None) -> RoundPlan:
    """Which bins to empty at the round of `round_ts`: those whose forecast reaches the
    threshold before `next_round_ts`."""
    collect, wait, unknown = [], [], []
    for b in bins:
        km = round(distance_km(depot, b.location), 3) if depot is not None else None
        f = forecasts.get(b.device)
        if f is None:
            unknown.append(PlannedBin(b.device, b.site, b.stream, None, None, None, km))
            continue
        planned = PlannedBin(b.device, b.site, b.stream, round(f.fill_at(round_ts), 1),
                             round(f.fill_at(next_round_ts), 1), f.reaches(threshold_pct), km)
        (collect if f.fill_at(next_round_ts) >= threshold_pct else wait).append(planned)
    collect.sort(key=lambda p: (p.distance_km if p.distance_km is not None else 0.0, p.device))
    wait.sort(key=lambda p: (p.reaches_threshold if p.reaches_threshold is not None else float("inf"), p.device))
    return RoundPlan(round_ts, next_round_ts, threshold_pct, collect, wait, unknown)


def avoidable_emptyings(times: np.ndarray, fills: np.ndarray, rate_pct_per_day: float, threshold_pct: float,
                        next_round_after: np.ndarray) -> int:
    """How many of a bin's emptyings (at `times`, with fill % `fills` just before) the plan
    would have skipped: those whose fill, growing at the bin's rate until the next round,
    would still have been below the threshold. `next_round_after`: each one's next round
    start (`next_rounds`)."""
    grown = fills + rate_pct_per_day * (next_round_after - times) / DAY_S
    return int(np.count_nonzero(grown < threshold_pct))
