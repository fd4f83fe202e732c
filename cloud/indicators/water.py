"""Water indicators: consumption, per inhabitant, night flow, suspected leaks.

Water meters are meters like electricity's (boucle.kinds): their litres accrue per interval
of the period's grid, reset-aware and spread linearly between readings (boucle.rollup), so
a night hour's volume is the sum of its four quarter-hours. Every water meter of a site is
taken as a supply meter (a site's volumes add up; sub-meters would count twice: no
`channel` for water yet).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from boucle.registry import Device, Site
from cloud.indicators import caveats as caveat_texts
from cloud.indicators.context import Context
from cloud.indicators.outcome import Outcome

L_PER_M3 = 1000.0
NIGHT_HOURS = (1, 2, 3, 4)
"""Local hours starting at 01:00 to 04:00: the night window 01:00-05:00."""
DAY_S = 86400


def water_meters(ctx: Context) -> list[Device]:
    """The scope's water meters, in registry order (also: the meters whose profiles the night
    indicators read)."""
    return [d for d in ctx.devices if d.kind == "water"]


def litres(ctx: Context, devices: list[Device]) -> float:
    """Accepted litres of these meters over the period (their mL ÷ 1,000)."""
    return sum(ctx.frame(d).amount for d in devices) / 1000


def consumed(ctx: Context) -> Outcome:
    """water.consumed: Σ reset-aware counter deltas of the scope's water meters, m³."""
    devices = water_meters(ctx)
    by_site: dict[str, float] = {}
    for d in devices:
        by_site[d.site] = by_site.get(d.site, 0.0) + ctx.frame(d).amount / 1000 / L_PER_M3
    return Outcome(sum(by_site.values()) if devices else None,
                   "Σ water accrued in [start, end) by water meters: each water_l delta against the previous "
                   "reading, spread linearly between the two readings; a counter going down restarted from 0 "
                   "(counts in full); deltas > 1.5 × rated flow (rated_flow_m3_h, else 10,000 L/min) × Δt + 1 L "
                   "rejected", devices,
                   {"by_site": by_site, "resets": sum(ctx.frame(d).resets for d in devices),
                    "rejected_deltas": sum(ctx.frame(d).rejected for d in devices)})


def per_capita(ctx: Context) -> Outcome:
    """water.per_capita: litres per inhabitant (territories) or per employee (sites) per day."""
    devices = water_meters(ctx)
    if not devices:
        return Outcome(None, "no water meter in scope", devices)
    volume, days = litres(ctx, devices), ctx.period.seconds / DAY_S
    if ctx.scope.kind != "site":
        if not ctx.population:
            return Outcome(None, "population is 0 in the registry", devices)
        return Outcome(volume / ctx.population / days, "water.consumed (L) ÷ population ÷ period in days",
                       devices, {"litres": volume, "population": ctx.population, "days": days},
                       caveats=[caveat_texts.METERED_SITES_ONLY])
    metered = [s for s in ctx.sites if any(d.site == s.id for d in devices)]
    if not all(s.employees for s in metered):
        return Outcome(None, "a metered site has no employees in the registry", devices)
    staff = sum(s.employees or 0 for s in metered)
    return Outcome(volume / staff / days, "water.consumed (L) ÷ employees ÷ period in days", devices,
                   {"litres": volume, "employees": staff, "days": days}, unit="L/employee/day")


def night_minima(ctx: Context, site: Site, devices: list[Device]) -> dict[str, float]:
    """Per local night (its date) in the period, the site's minimum hourly flow (L/h) over
    the hours from 01:00 to 05:00 local that lie wholly in the period with every interval
    covered by readings on both sides; nights without such an hour are left out. Meters of
    any kind: Wh of electricity meters give the night base load in W (cloud.alerts)."""
    key = ("night_minima", site.id, tuple(d.id for d in devices))
    if key in ctx.memo:
        return ctx.memo[key]  # type: ignore[return-value]
    volume, covered = ctx.buckets(devices)
    starts, ends = ctx.grid[:-1], ctx.grid[1:]
    tz = ctx.site_timezone(site)
    first = datetime.fromtimestamp(ctx.period.start, tz).date()
    last = datetime.fromtimestamp(ctx.period.end, tz).date()
    out: dict[str, float] = {}
    day = first
    while day <= last:
        flows = []
        seen = set()
        for hour in NIGHT_HOURS:
            lo = int(datetime(day.year, day.month, day.day, hour, tzinfo=tz).timestamp())
            if lo in seen:  # a local hour that does not exist (spring forward) is the next one
                continue
            seen.add(lo)
            hi = lo + 3600
            if lo < ctx.period.start or hi > ctx.period.end:
                continue
            inside = (starts >= lo) & (ends <= hi)
            if int((ends[inside] - starts[inside]).sum()) == 3600 and covered[inside].all():
                flows.append(float(volume[inside].sum()))
        if flows:
            out[day.isoformat()] = min(flows)
        day += timedelta(days=1)
    ctx.memo[key] = out
    return out


def _metered_sites(ctx: Context) -> list[tuple[Site, list[Device]]]:
    devices = water_meters(ctx)
    return [(s, mine) for s in ctx.sites if (mine := [d for d in devices if d.site == s.id])]


def night_flow(ctx: Context) -> Outcome:
    """water.night_flow: per site, the mean over the period's nights of its minimum hourly
    flow between 01:00 and 05:00 local; the scope's value is the sum over its sites."""
    devices = water_meters(ctx)
    by_site: dict[str, float] = {}
    nights: dict[str, int] = {}
    for site, mine in _metered_sites(ctx):
        minima = night_minima(ctx, site, mine)
        if minima:
            by_site[site.id] = float(np.mean(list(minima.values())))
            nights[site.id] = len(minima)
    if not by_site:
        return Outcome(None, "no night hour (01:00-05:00 local) in the period covered by every water meter "
                       "of a site", devices)
    return Outcome(sum(by_site.values()),
                   "Σ over sites of the mean, over the nights of the period, of the site's minimum hourly "
                   "volume between 01:00 and 05:00 local time (hours wholly in the period whose quarter-hours "
                   "all have readings on both sides)", devices, {"by_site": by_site, "nights": nights})


def leak_suspected(ctx: Context) -> Outcome:
    """water.leak_suspected: sites whose night flow stayed above zero for N nights in a row."""
    devices = water_meters(ctx)
    if not devices:
        return Outcome(None, "no water meter in scope", devices)
    n = int(ctx.references.threshold("leak_nights"))
    suspected: dict[str, dict] = {}
    for site, mine in _metered_sites(ctx):
        run, best, until, previous = 0, 0, None, None
        for night, flow in sorted(night_minima(ctx, site, mine).items()):
            date = datetime.fromisoformat(night).date()
            if flow <= 0:
                run = 0
            elif previous is not None and date - previous == timedelta(days=1):
                run += 1
            else:  # the first night, or one after a night without covered hours
                run = 1
            previous = date
            if run > best:
                best, until = run, night
        if best >= n:
            suspected[site.id] = {"nights_in_a_row": best, "until": until}
    return Outcome(float(len(suspected)),
                   f"sites whose minimum hourly night flow (01:00-05:00 local) stayed above 0 L/h for at least "
                   f"{n} nights in a row (a night without covered hours breaks the run) "
                   "[thresholds].leak_nights", devices, {"sites": suspected, "nights": n})
