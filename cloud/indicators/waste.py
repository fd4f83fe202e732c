"""Waste indicators: mass by stream, per inhabitant, sorting, routes, collection quality."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from boucle.accounting import fill_emptyings
from boucle.registry import RESIDUAL_STREAM, Device
from cloud.indicators import caveats as caveat_texts
from cloud.indicators.context import Context
from cloud.indicators.outcome import Outcome

G_PER_KG = 1000.0
RECYCLED_ROUTES = ("reuse", "recycling", "composting", "anaerobic_digestion")
DAY = 86400


def weighing_devices(ctx: Context) -> list[Device]:
    """Bins with a scale: a profile naming one, or weight readings in the period.

    A silent scale bin stays in (its coverage shows it); fill-only bins are out.
    """
    if "weighing" not in ctx.memo:
        out = []
        for d in ctx.waste_devices():
            times, _ = ctx.source.series(d, ctx.period).field("weight_g")
            if times.size or "scale" in (d.profile or ""):
                out.append(d)
        ctx.memo["weighing"] = out
    return ctx.memo["weighing"]  # type: ignore[return-value]


def mass_by(ctx: Context, key) -> dict[str, float]:
    """Deposited kg of the weighing bins, summed by key(device)."""
    out: dict[str, float] = {}
    for d in weighing_devices(ctx):
        k = key(d)
        out[k] = out.get(k, 0.0) + ctx.waste(d).deposited_g / G_PER_KG
    return dict(sorted(out.items()))


def route_of(ctx: Context, device: Device) -> str:
    key = ("route", device.site, device.stream)
    if key not in ctx.memo:
        site = ctx.registry.site(device.site)
        ctx.memo[key] = ctx.registry.route(site.territory if site else "", device.stream or RESIDUAL_STREAM)
    return ctx.memo[key]  # type: ignore[return-value]


def generated(ctx: Context) -> Outcome:
    """waste.generated: Σ deposited mass, by stream."""
    devices = weighing_devices(ctx)
    streams = mass_by(ctx, lambda d: d.stream or RESIDUAL_STREAM)
    return Outcome(
        sum(streams.values()) if devices else None,
        "Σ deposited mass of weighing bins: rises of weight_g of at least 100 g over the last "
        "accepted level (hysteresis); an emptying (drop to <= max(500 g, 10% of the weight "
        "before)) is not a deposit, weight above tare after it is; fill-only bins add no mass.",
        devices, {"by_stream": streams},
    )


def _per_capita(ctx: Context, kg: float, devices: list[Device], what: str) -> Outcome:
    if not devices:
        return Outcome(None, "no weighing bin in scope", devices)
    if ctx.population is None:
        return Outcome(None, "per-inhabitant figures are for territories, not sites", devices)
    if ctx.population == 0:
        return Outcome(None, "population is 0 in the registry", devices)
    return Outcome(kg / ctx.population / ctx.years,
                   f"{what} ÷ population ÷ period in calendar years", devices,
                   {"kg": kg, "population": ctx.population, "years": ctx.years},
                   caveats=[caveat_texts.SENSOR_BINS_ONLY])


def per_capita(ctx: Context) -> Outcome:
    g = generated(ctx)
    return _per_capita(ctx, g.value or 0.0, g.devices, "waste.generated (all streams)")


def residual_per_capita(ctx: Context) -> Outcome:
    devices = [d for d in weighing_devices(ctx) if d.stream == RESIDUAL_STREAM]
    kg = sum(ctx.waste(d).deposited_g for d in devices) / G_PER_KG
    return _per_capita(ctx, kg, devices, "residual stream mass")


def _share(ctx: Context, selected, formula: str, by: str = "route") -> Outcome:
    devices = weighing_devices(ctx)
    total = sum(ctx.waste(d).deposited_g for d in devices) / G_PER_KG
    part = sum(ctx.waste(d).deposited_g for d in devices if selected(d)) / G_PER_KG
    breakdown = {f"by_{by}": mass_by(ctx, (lambda d: route_of(ctx, d)) if by == "route"
                                      else (lambda d: d.stream or RESIDUAL_STREAM))}
    return Outcome(100 * part / total if total > 0 else None, formula, devices, breakdown)


def sorting_rate(ctx: Context) -> Outcome:
    return _share(ctx, lambda d: d.stream != RESIDUAL_STREAM,
                  "non-residual deposited mass ÷ all deposited mass", by="stream")


def recycling_rate(ctx: Context) -> Outcome:
    return _share(ctx, lambda d: route_of(ctx, d) in RECYCLED_ROUTES,
                  "mass of streams routed to reuse, recycling, composting or anaerobic digestion "
                  "(territory route, else the stream's default) ÷ waste.generated; reuse counts "
                  "as in the EU target (prepared for reuse and recycled)")


def landfill_rate(ctx: Context) -> Outcome:
    return _share(ctx, lambda d: route_of(ctx, d) == "landfill",
                  "mass of streams routed to landfill ÷ waste.generated")


def ghg(ctx: Context) -> Outcome:
    """waste.ghg: Σ mass × emission factor of its treatment route."""
    devices = weighing_devices(ctx)
    by_route = mass_by(ctx, lambda d: route_of(ctx, d))
    factors = {r: ctx.references.route_factor(r) for r in by_route}
    co2 = {r: kg * factors[r]["value"] for r, kg in by_route.items()}
    return Outcome(sum(co2.values()) if devices else None,
                   "Σ deposited mass × emission factor of its treatment route (references file; "
                   "avoided emissions not subtracted)", devices,
                   {"by_route_kgco2e": co2, "factors": factors})


# --- collection quality ----------------------------------------------------------------


@dataclass
class BinCycles:
    """A container over the period: its fill at each emptying and its fullest moment per cycle."""

    device: Device
    fill_at_emptying: np.ndarray
    cycle_max_fill: np.ndarray
    """Per cycle (readings up to each emptying, then up to the period end): the fullest fill."""


def fill_levels(ctx: Context, device: Device) -> tuple[np.ndarray, np.ndarray]:
    """(times, fill %) of a bin: its fill_pct, or weight ÷ capacity_kg for scale bins."""
    series = ctx.source.series(device, ctx.period)
    times, fill = series.field("fill_pct")
    if times.size:
        return times, fill
    times, weight = series.field("weight_g")
    if times.size and device.capacity_kg:
        return times, weight / G_PER_KG / device.capacity_kg * 100
    return times[:0], weight[:0]


def bin_cycles(ctx: Context, device: Device) -> BinCycles | None:
    """Emptyings and cycle maxima of a bin with a fill measure, or None without one."""
    series = ctx.source.series(device, ctx.period)
    if series.emptied is not None and series.waste is not None and device.capacity_kg \
            and "fill_pct" not in series.fields:
        ts = series.emptied[:, 0]
        if ts.size < 2 or bool((ts[1:] > ts[:-1]).all()):
            # a scale bin from packs: its only levels are those just before its emptyings, so
            # (emptyings at distinct times) each cycle's fullest moment is the level its
            # emptying ends (what the general path below finds, without cutting cycles)
            fills = series.emptied[:, 1] / G_PER_KG / device.capacity_kg * 100
            return BinCycles(device, fills, fills)
    times, fill = fill_levels(ctx, device)
    if not times.size and not (device.capacity_kg or device.capacity_l):
        return None
    if series.fill_emptyings is not None:
        emptied = _rows(series.fill_emptyings) if series.emptied is None else series.emptied
    elif series.waste is not None or (series.field("weight_g")[0].size and not series.field("fill_pct")[0].size):
        capacity = device.capacity_kg
        if not capacity:
            return None
        emptied = _rows(ctx.waste(device).emptyings) if series.emptied is None else series.emptied
        emptied = np.column_stack([emptied[:, 0], emptied[:, 1] / G_PER_KG / capacity * 100])
    else:
        emptied = _rows(fill_emptyings(times, fill))
    # readings inside the period, cut into cycles at each emptying (times are sorted)
    first = int(np.searchsorted(times, ctx.period.start, side="left"))
    before = emptied[:, 1]
    cuts = np.maximum(np.searchsorted(times, emptied[:, 0], side="left"), first)
    lo = np.concatenate([[first], cuts])
    hi = np.concatenate([cuts, [times.size]])
    # each cycle's fullest reading (NaN for a cycle without readings), in one pass: the
    # cycles partition the readings, so each non-empty one ends where the next one starts
    tops = np.full(lo.size, np.nan)
    has = hi > lo
    if has.any():
        tops[has] = np.maximum.reduceat(fill, lo[has])
    # the fill just before an emptying ends its cycle
    ended = np.fmax(tops[:-1], before) if before.size else before
    maxima = np.concatenate([ended, tops[-1:]])
    return BinCycles(device, before, maxima[~np.isnan(maxima)])


def _rows(emptyings: list[tuple[int, float]]) -> np.ndarray:
    """(ts, level) pairs as a 2-column float64 array."""
    return np.array(emptyings, dtype=np.float64).reshape(-1, 2)


def _cycles(ctx: Context) -> list[BinCycles]:
    if "cycles" not in ctx.memo:
        found = (bin_cycles(ctx, d) for d in ctx.waste_devices())
        ctx.memo["cycles"] = [c for c in found if c is not None]
    return ctx.memo["cycles"]  # type: ignore[return-value]


def fill_at_collection(ctx: Context) -> Outcome:
    cycles = _cycles(ctx)
    fills = _joined([c.fill_at_emptying for c in cycles])
    return Outcome(float(np.mean(fills)) if fills.size else None,
                   "mean fill just before each emptying (fill_pct, or weight ÷ capacity_kg)",
                   [c.device for c in cycles], {"emptyings": int(fills.size)})


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0)


def overflows(ctx: Context) -> Outcome:
    threshold = ctx.references.threshold("overflow_fill_pct")
    cycles = _cycles(ctx)
    events = int(np.count_nonzero(_joined([c.cycle_max_fill for c in cycles]) >= threshold))
    # days each container was actually observed (readings × interval), so a silent bin
    # does not dilute the rate
    container_days = sum(min(ctx.period.seconds, ctx.received(c.device) * c.device.interval_s)
                         for c in cycles) / DAY
    return Outcome(1000 * events / container_days if container_days else None,
                   f"cycles between emptyings whose fill reached {threshold:g}% ÷ observed "
                   "container-days (readings × interval) × 1,000", [c.device for c in cycles],
                   {"events": events, "container_days": container_days, "threshold_pct": threshold})


def avoidable_collections(ctx: Context) -> Outcome:
    threshold = ctx.references.threshold("avoidable_fill_pct")
    cycles = _cycles(ctx)
    fills = _joined([c.fill_at_emptying for c in cycles])
    low = int(np.count_nonzero(fills < threshold))
    return Outcome(100 * low / fills.size if fills.size else None,
                   f"emptyings with fill below {threshold:g}% ÷ emptyings",
                   [c.device for c in cycles], {"emptyings": int(fills.size), "avoidable": low,
                                                "threshold_pct": threshold})
