"""Energy indicators: consumption, demand profile, local PV, pooling, greenhouse gas.

Power indicators read the meters' energy per interval of the period's grid (UTC
quarter-hours: `Context.buckets`); energy accrues linearly between readings
(boucle.rollup), so a gap spreads its delta instead of making a spike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from boucle.registry import Device, Site
from cloud.indicators import caveats as caveat_texts
from cloud.indicators.context import Context
from cloud.indicators.geo import EARTH_RADIUS_KM, distance_km
from cloud.indicators.outcome import Outcome

WH_PER_KWH = 1000.0
IMPORTING_WH = 1.0
"""An interval with more than 1 Wh imported (the counter resolution) had no export."""
CONSUMED_FORMULA = (
    "Σ energy accrued in [start, end) by grid_import meters: each counter delta against the "
    "previous reading, spread linearly between the two readings; a counter going down "
    "restarted from 0 (counts in full); deltas > 1.5 × rated power × Δt + 1 Wh rejected. "
    "Self-consumed PV not added (no export meter: see energy.self_consumption).")


def consumed(ctx: Context) -> Outcome:
    """energy.consumed: Σ reset-aware counter deltas of the scope's grid_import meters."""
    devices = ctx.energy_devices("grid_import")
    by_site: dict[str, float] = {}
    rejected = resets = 0
    for d in devices:
        f = ctx.frame(d)
        by_site[d.site] = by_site.get(d.site, 0.0) + ctx.wh(d) / WH_PER_KWH
        rejected += f.rejected
        resets += f.resets
    value = sum(by_site.values()) if devices else None
    return Outcome(value, CONSUMED_FORMULA, devices,
                   {"by_site": by_site, "rejected_deltas": rejected, "resets": resets})


def intensity(ctx: Context) -> Outcome:
    """energy.intensity: consumed per inhabitant (territories) or per m² (sites), per year."""
    devices = ctx.energy_devices("grid_import")
    if not devices:
        return Outcome(None, "no grid_import meter in scope", [])
    kwh = ctx.energy_wh(devices) / WH_PER_KWH
    years = ctx.years
    if ctx.scope.kind != "site":
        population = ctx.population or 0
        if not population:
            return Outcome(None, "population is 0 in the registry", devices)
        return Outcome(kwh / population / years,
                       "energy.consumed ÷ population ÷ period in calendar years", devices,
                       {"kwh": kwh, "population": population, "years": years},
                       unit="kWh/inhabitant/yr")
    metered = [s for s in ctx.sites if any(d.site == s.id for d in devices)]
    if all(s.floor_area_m2 for s in metered):
        area = sum(s.floor_area_m2 or 0 for s in metered)
        return Outcome(kwh / area / years, "energy.consumed ÷ floor area ÷ period in calendar years",
                       devices, {"kwh": kwh, "floor_area_m2": area, "years": years}, unit="kWh/m²/yr")
    if all(s.employees for s in metered):
        staff = sum(s.employees or 0 for s in metered)
        return Outcome(kwh / staff / years, "energy.consumed ÷ employees ÷ period in calendar years",
                       devices, {"kwh": kwh, "employees": staff, "years": years},
                       unit="kWh/employee/yr")
    return Outcome(None, "site has neither floor_area_m2 nor employees in the registry", devices,
                   caveats=[caveat_texts.NO_FLOOR_AREA])


def grid_meters(ctx: Context) -> list[Device]:
    """The meters whose profiles the power indicators read."""
    return ctx.energy_devices("grid_import")


def _power_kw(ctx: Context) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Device]]:
    """(mean power kW per interval, covered mask, interval starts, devices) of grid import."""
    devices = grid_meters(ctx)
    wh, covered = ctx.buckets(devices)
    return wh * 3.6 / ctx.interval_seconds, covered, ctx.grid[:-1], devices


def peak_demand(ctx: Context) -> Outcome:
    """energy.peak_demand: max of 15-min mean power of the scope (coincident peak)."""
    kw, covered, starts, devices = _power_kw(ctx)
    if not devices or not covered.any():
        return Outcome(None, "no 15-min interval covered by every grid_import meter", devices)
    i = int(np.argmax(np.where(covered, kw, -np.inf)))
    return Outcome(float(kw[i]),
                   "max over 15-min intervals (UTC quarter-hours) of Σ grid_import energy ÷ the "
                   "interval's length (intervals every meter covers; energy between readings "
                   "spread linearly)", devices,
                   {"at": int(starts[i])})


def load_factor(ctx: Context) -> Outcome:
    """energy.load_factor: E ÷ (P_peak × T)."""
    peak = peak_demand(ctx)
    devices = peak.devices
    if peak.value is None or peak.value <= 0:
        return Outcome(None, "no peak demand", devices)
    kwh = ctx.energy_wh(devices) / WH_PER_KWH
    hours = ctx.period.seconds / 3600
    return Outcome(100 * kwh / (peak.value * hours), "energy.consumed ÷ (peak_demand × period hours)",
                   devices, {"kwh": kwh, "peak_kw": peak.value, "hours": hours})


def base_load(ctx: Context) -> Outcome:
    """energy.base_load: 5th percentile of 15-min mean power."""
    kw, covered, _, devices = _power_kw(ctx)
    if not devices or not covered.any():
        return Outcome(None, "no 15-min interval covered by every grid_import meter", devices)
    return Outcome(float(np.percentile(kw[covered], 5)),
                   "5th percentile of 15-min mean grid_import power (covered intervals)", devices)


def off_hours_share(ctx: Context) -> Outcome:
    """energy.off_hours_share: energy outside each site's opening hours ÷ energy."""
    devices = ctx.energy_devices("grid_import")
    total = off = 0.0
    by_site: dict[str, float] = {}
    for site in ctx.sites:
        mine = ctx.energy_devices("grid_import", [site])
        if not mine:
            continue
        intervals = ctx.open_intervals(site)
        site_total = site_open = 0.0
        for d in mine:
            site_total += ctx.wh(d)
            if intervals:  # each interval's energy × its open share
                site_open += float(np.multiply(ctx.slots_wh(d), ctx.open_fraction(site)).sum())
        total += site_total
        off += site_total - site_open
        if site_total > 0:
            by_site[site.id] = 100 * (site_total - site_open) / site_total
    value = 100 * off / total if total > 0 else None
    return Outcome(value,
                   "energy outside the site's opening hours (local time of its territory, DST "
                   "applied) ÷ energy.consumed; per 15-min interval, its energy × its open share", devices,
                   {"by_site": by_site, "off_hours_kwh": off / WH_PER_KWH})


def pv_produced(ctx: Context) -> Outcome:
    devices = ctx.energy_devices("pv_production")
    by_site: dict[str, float] = {}
    for d in devices:
        by_site[d.site] = by_site.get(d.site, 0.0) + ctx.wh(d) / WH_PER_KWH
    return Outcome(sum(by_site.values()) if devices else None,
                   "Σ energy accrued in [start, end) by pv_production meters (reset-aware counter "
                   "deltas, spread between readings)", devices, {"by_site": by_site})


# --- self-consumption, self-sufficiency, pooling -----------------------------------------


@dataclass
class SiteBalance:
    """A site's energy per 15-min interval (Wh): import, PV, PV used on site, load (import +
    PV used when not given); their totals are computed once."""

    site: Site
    imported: np.ndarray
    pv: np.ndarray
    self_used: np.ndarray
    given_load: np.ndarray | None
    method: str
    devices: list[Device] = field(default_factory=list)

    @cached_property
    def load(self) -> np.ndarray:
        return self.imported + self.self_used if self.given_load is None else self.given_load

    @cached_property
    def surplus(self) -> np.ndarray:
        """PV not used on site (exported), per interval."""
        return np.maximum(self.pv - self.self_used, 0.0)

    @cached_property
    def pv_wh(self) -> float:
        return float(self.pv.sum())

    @cached_property
    def used_wh(self) -> float:
        return float(self.self_used.sum())

    @cached_property
    def imported_wh(self) -> float:
        return float(self.imported.sum())

    @cached_property
    def load_wh(self) -> float:
        if self.given_load is None:  # import + PV used, summed apart (no array to make)
            return self.imported_wh + self.used_wh
        return float(self.given_load.sum())

    @cached_property
    def surplus_wh(self) -> float:
        return float(self.surplus.sum())


def site_balance(ctx: Context, site: Site) -> SiteBalance:
    """How a site's PV splits between its own load and the grid, per 15-min interval.

    With a `load` meter covering at least the grid import over the period (a whole-site
    load meter): PV used = clip(load − import, 0, PV) (Home Assistant's form). Otherwise
    (no export meter): an interval that imported had no export, so all its PV was used;
    an interval that imported nothing used at most the site's base load (5th percentile
    of its import over intervals without PV) and exported the rest.
    """
    grid = ctx.energy_devices("grid_import", [site])
    pv_devices = ctx.energy_devices("pv_production", [site])
    loads = ctx.energy_devices("load", [site])
    imported, grid_cov = ctx.buckets(grid)
    pv, _ = ctx.buckets(pv_devices)
    if _whole_site_loads(ctx, site):
        load_wh, _ = ctx.buckets(loads)  # per interval only when used: machines' profiles are not
        used = np.maximum(load_wh - imported, 0.0)
        if pv_devices:
            used = np.minimum(used, pv)
        return SiteBalance(site, imported, pv, used, load_wh, "load meter", grid + pv_devices + loads)
    if not pv_devices:
        return SiteBalance(site, imported, pv, np.zeros_like(pv), imported, "import only", grid)
    night = pv <= 0
    night &= grid_cov
    base = _percentile(imported[night], 5) if night.any() else 0.0
    used = np.minimum(pv, base)
    np.copyto(used, pv, where=imported > IMPORTING_WH)
    return SiteBalance(site, imported, pv, used, None, "estimated (no export meter)", grid + pv_devices)


def _percentile(values: np.ndarray, q: float) -> float:
    """np.percentile's default (linear between the two nearest ranks) by a partial sort of
    `values` in place (a third of np.percentile's time on a year of 15-min intervals)."""
    rank = (values.size - 1) * q / 100
    lo = int(rank)
    hi = min(lo + 1, values.size - 1)
    values.partition([lo, hi] if hi != lo else lo)
    a, b = float(values[lo]), float(values[hi])
    return a + (b - a) * (rank - lo)


def _whole_site_loads(ctx: Context, site: Site) -> list[Device]:
    """A site's load meters when, together, they metered at least its grid import (a
    whole-site load meter); else none (machines)."""
    loads = ctx.energy_devices("load", [site])
    total = ctx.energy_wh(loads)
    return loads if loads and total > 0 and total >= ctx.energy_wh(ctx.energy_devices("grid_import", [site])) else []


def _metered_sites(ctx: Context) -> list[Site]:
    metered = {d.site for d in ctx.devices if d.kind == "energy"}
    return [s for s in ctx.sites if s.id in metered]


def balance_meters(ctx: Context) -> list[Device]:
    """The meters whose profiles the site balances read: import, PV, whole-site loads."""
    out = []
    for site in _metered_sites(ctx):
        out += ctx.energy_devices("grid_import", [site]) + ctx.energy_devices("pv_production", [site])
        out += _whole_site_loads(ctx, site)
    return out


def balances(ctx: Context) -> list[SiteBalance]:
    """The balance of every site of the scope with an energy meter (computed once)."""
    if "balances" not in ctx.memo:
        ctx.memo["balances"] = [site_balance(ctx, s) for s in _metered_sites(ctx)]
    return ctx.memo["balances"]  # type: ignore[return-value]


def self_consumption(ctx: Context) -> Outcome:
    """energy.self_consumption: PV used on site ÷ PV produced."""
    sites = [b for b in balances(ctx) if b.pv_wh > 0 or any(d.channel == "pv_production" for d in b.devices)]
    devices = [d for b in sites for d in b.devices]
    produced = sum(b.pv_wh for b in sites)
    used = sum(b.used_wh for b in sites)
    return Outcome(100 * used / produced if produced > 0 else None,
                   "Σ PV used on site ÷ Σ PV produced, per 15-min interval; without an export "
                   "meter an importing interval used all its PV, a non-importing one at most the "
                   "site's base load", devices,
                   {"by_site": {b.site.id: {"pv_kwh": b.pv_wh / WH_PER_KWH,
                                            "used_kwh": b.used_wh / WH_PER_KWH,
                                            "method": b.method} for b in sites}},
                   caveats=[caveat_texts.NO_EXPORT_METER] if any(
                       b.method.startswith("estimated") for b in sites) else [])


def self_sufficiency(ctx: Context) -> Outcome:
    """energy.self_sufficiency: PV used on site ÷ site load."""
    sites = balances(ctx)
    devices = [d for b in sites for d in b.devices]
    load = sum(b.load_wh for b in sites)
    used = sum(b.used_wh for b in sites)
    return Outcome(100 * used / load if load > 0 else None,
                   "Σ PV used on site ÷ Σ site load (load = import + PV used on site; with a "
                   "whole-site load meter: 1 − min(1, E_import ÷ E_load), Home Assistant's form)",
                   devices, {"used_kwh": used / WH_PER_KWH, "load_kwh": load / WH_PER_KWH})


@dataclass
class Pooling:
    """Collective self-consumption potential of a scope."""

    distance_km: float
    shared_wh: float
    load_wh: float
    self_used_wh: float
    pairs: list[dict]
    devices: list[Device]

    @property
    def gain_pp(self) -> float | None:
        return 100 * self.shared_wh / self.load_wh if self.load_wh > 0 else None


def pooling(ctx: Context, max_distance_km: float | None = None) -> Pooling:
    """PV surplus of each site allocated, per 15-min interval, to the import of other sites
    of the scope within `max_distance_km`, pro rata of their remaining import (the default
    allocation key of French collective self-consumption). Producers in id order."""
    d_max = max_distance_km if max_distance_km is not None else ctx.references.threshold("pooling_distance_km")
    sites = balances(ctx)
    remaining: dict[str, np.ndarray] = {}  # import left to each site, copied when first shared
    pairs: list[dict] = []
    rough = _rough_distances_km([b.site.location for b in sites])
    for p in sorted(range(len(sites)), key=lambda i: sites[i].site.id):
        producer = sites[p]
        # candidates by the vectorised distance, decided by the exact one
        near = [(sites[i], distance_km(producer.site.location, sites[i].site.location))
                for i in np.flatnonzero(rough[p] <= d_max * (1 + 1e-9) + 1e-9) if i != p]
        near = [(b, km) for b, km in near if km <= d_max]
        if not near or producer.surplus_wh <= 0:
            continue
        surplus = producer.surplus
        demand = np.vstack([remaining.get(b.site.id, b.imported) for b, _ in near])
        total = demand.sum(axis=0)
        given = np.minimum(surplus, total)
        share = np.divide(demand, total, out=np.zeros_like(demand), where=total > 0) * given
        for (b, km), row in zip(near, share):
            if b.site.id not in remaining:
                remaining[b.site.id] = b.imported.copy()
            remaining[b.site.id] -= row
            if row.sum() > 0:
                pairs.append({"from": producer.site.id, "to": b.site.id, "distance_km": round(km, 3),
                              "kwh": float(row.sum()) / WH_PER_KWH})
    pairs.sort(key=lambda p: -p["kwh"])
    return Pooling(d_max, sum(p["kwh"] for p in pairs) * WH_PER_KWH,
                   sum(b.load_wh for b in sites), sum(b.used_wh for b in sites),
                   pairs, [d for b in sites for d in b.devices])


def _rough_distances_km(locations: list[tuple[float, float]]) -> np.ndarray:
    """Haversine distances between all the points at once (to the last bits of distance_km)."""
    lat, lon = np.radians(np.array(locations, dtype=np.float64).reshape(-1, 2)).T
    h = np.sin((lat[None, :] - lat[:, None]) / 2) ** 2 + \
        np.cos(lat[:, None]) * np.cos(lat[None, :]) * np.sin((lon[None, :] - lon[:, None]) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(1.0, np.sqrt(h)))


def pooling_gain(ctx: Context) -> Outcome:
    """energy.pooling_gain: added self-sufficiency of the scope from sharing PV surplus."""
    p = pooling(ctx)
    before = 100 * p.self_used_wh / p.load_wh if p.load_wh > 0 else None
    return Outcome(p.gain_pp,
                   f"per 15-min interval, PV surplus of a site allocated to the import of other "
                   f"sites within {p.distance_km:g} km (Code de l'énergie L315-2), pro rata of "
                   "import; gain = shared ÷ Σ site load, in percentage points", p.devices,
                   {"kwh": p.shared_wh / WH_PER_KWH, "distance_km": p.distance_km,
                    "self_sufficiency_pct": before,
                    "with_pooling_pct": None if before is None else before + (p.gain_pp or 0.0),
                    "pairs": p.pairs})


def ghg(ctx: Context) -> Outcome:
    """energy.ghg: imported kWh × grid emission factor."""
    devices = ctx.energy_devices("grid_import")
    factor = ctx.references.grid_factor
    kwh = ctx.energy_wh(devices) / WH_PER_KWH
    return Outcome(kwh * factor["value"] if devices else None,
                   f"energy.consumed × {factor['value']} {factor['unit']} ({factor['source']}, "
                   f"{factor.get('year', '')})", devices, {"kwh": kwh, "factor": factor})
