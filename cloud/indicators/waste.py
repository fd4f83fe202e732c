"""Waste indicators: mass by stream, per inhabitant, sorting, routes, collection quality."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import numpy as np

from boucle.registry import RESIDUAL_STREAM, Device, Territory, profile_fields
from boucle.rollup import FILL, WEIGHT
from cloud.indicators import caveats as caveat_texts
from cloud.indicators.context import Context
from cloud.indicators.outcome import Outcome

G_PER_KG = 1000.0
RECYCLED_ROUTES = ("reuse", "recycling", "composting", "anaerobic_digestion")
DAY = 86400


def declared_fields(ctx: Context, device: Device) -> frozenset[str]:
    """The fields a bin's sensor profile produces (boucle.registry.profile_fields, read once
    a profile and computation)."""
    key = ("profile_fields", device.profile)
    if key not in ctx.memo:
        ctx.memo[key] = profile_fields(device.profile)
    return ctx.memo[key]  # type: ignore[return-value]


def weighing_devices(ctx: Context) -> list[Device]:
    """Bins with a scale: weight readings in the period, or a sensor profile that has one
    (so that a silent scale bin stays in: its coverage shows it). Fill-only bins are out."""
    if "weighing" not in ctx.memo:
        ctx.memo["weighing"] = [d for d in ctx.waste_devices()
                                if ctx.frame(d).measured & WEIGHT or "weight_g" in declared_fields(ctx, d)]
    return ctx.memo["weighing"]  # type: ignore[return-value]


def deposited_g(ctx: Context, device: Device) -> float:
    return float(ctx.frame(device).amount)


def mass_by(ctx: Context, key) -> dict[str, float]:
    """Deposited kg of the weighing bins, summed by key(device)."""
    out: dict[str, float] = {}
    for d in weighing_devices(ctx):
        k = key(d)
        out[k] = out.get(k, 0.0) + deposited_g(ctx, d) / G_PER_KG
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
    kg = sum(deposited_g(ctx, d) for d in devices) / G_PER_KG
    return _per_capita(ctx, kg, devices, "residual stream mass")


def _share(ctx: Context, selected, formula: str, by: str = "route") -> Outcome:
    devices = weighing_devices(ctx)
    total = sum(deposited_g(ctx, d) for d in devices) / G_PER_KG
    part = sum(deposited_g(ctx, d) for d in devices if selected(d)) / G_PER_KG
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


def fill_measured(ctx: Context, device: Device) -> bool:
    """Whether a bin has a fill measure: fill_pct readings (or a profile with a fill sensor),
    or a scale and a capacity_kg to read its weight against."""
    f = ctx.frame(device)
    declared = declared_fields(ctx, device)
    return bool(f.measured & FILL or "fill_pct" in declared
                or (device.capacity_kg and (f.measured & WEIGHT or "weight_g" in declared)))


def emptying_fills(ctx: Context, device: Device) -> tuple[np.ndarray, np.ndarray]:
    """(when, fill % just before) of a bin's emptyings in the period: its fill reading at
    the top before the drop, else the weight then ÷ capacity_kg; emptyings where neither
    is known are left out. Read-only arrays (computed once a computation: several
    indicators read them)."""
    key = ("emptying_fills", device.id, device.site)
    if key not in ctx.memo:
        emptied = ctx.frame(device).emptied
        fill = emptied[:, 2].copy()
        if device.capacity_kg:
            by_weight = emptied[:, 1] / G_PER_KG / device.capacity_kg * 100
            np.copyto(fill, by_weight, where=np.isnan(fill))
        known = ~np.isnan(fill)
        times, fills = emptied[known, 0], fill[known]
        times.flags.writeable = fills.flags.writeable = False
        ctx.memo[key] = times, fills
    return ctx.memo[key]  # type: ignore[return-value]


def fills_before(ctx: Context, device: Device) -> np.ndarray:
    """A bin's fill % just before each of its emptyings in the period (emptying_fills)."""
    return emptying_fills(ctx, device)[1]


def _collected(ctx: Context) -> tuple[list[Device], np.ndarray]:
    """The bins with a fill measure, and the fill % before every emptying of them."""
    if "collected" not in ctx.memo:
        bins = [d for d in ctx.waste_devices() if fill_measured(ctx, d)]
        fills = [fills_before(ctx, d) for d in bins]
        ctx.memo["collected"] = (bins, np.concatenate(fills) if fills else np.zeros(0))
    return ctx.memo["collected"]  # type: ignore[return-value]


def fill_at_collection(ctx: Context) -> Outcome:
    bins, fills = _collected(ctx)
    return Outcome(float(np.mean(fills)) if fills.size else None,
                   "mean fill just before each emptying (its fill_pct reading, else weight ÷ "
                   "capacity_kg)", bins, {"emptyings": int(fills.size)})


def overflows(ctx: Context) -> Outcome:
    threshold = ctx.references.threshold("overflow_fill_pct")
    bins, fills = _collected(ctx)
    events = int(np.count_nonzero(fills >= threshold))
    # days each container was actually observed (readings × interval), so a silent bin
    # does not dilute the rate
    container_days = sum(min(ctx.frame(d).placement.seconds, ctx.received(d) * d.interval_s) for d in bins) / DAY
    return Outcome(1000 * events / container_days if container_days else None,
                   f"emptyings whose fill just before reached {threshold:g}% ÷ observed "
                   "container-days (readings × interval) × 1,000", bins,
                   {"events": events, "container_days": container_days, "threshold_pct": threshold})


def avoidable_collections(ctx: Context) -> Outcome:
    threshold = ctx.references.threshold("avoidable_fill_pct")
    bins, fills = _collected(ctx)
    low = int(np.count_nonzero(fills < threshold))
    return Outcome(100 * low / fills.size if fills.size else None,
                   f"emptyings with fill below {threshold:g}% ÷ emptyings",
                   bins, {"emptyings": int(fills.size), "avoidable": low, "threshold_pct": threshold})


def plan_avoidable_collections(ctx: Context) -> Outcome:
    """waste.plan_avoidable_collections: the emptyings the round plan (cloud.rounds) would
    have left for a later round, as a share of all emptyings."""
    from cloud.rounds import avoidable_emptyings, next_rounds

    bins, _ = _collected(ctx)
    total = avoidable = 0
    by_bin: dict[str, int] = {}
    # the bins' emptyings by territory: one table look-up of next rounds a territory
    by_territory: dict[str, tuple[Territory, ZoneInfo, list[tuple[Device, np.ndarray, np.ndarray, float]]]] = {}
    for d in bins:
        times, fills = emptying_fills(ctx, d)
        observed_days = ctx.frame(d).placement.seconds / DAY
        if not fills.size or observed_days <= 0:
            continue
        place = _territory_of(ctx, d.site)
        if place is None:
            continue
        rate = float(fills.sum()) / observed_days  # what was emptied is what came in
        by_territory.setdefault(place[0].id, (*place, []))[2].append((d, times, fills, rate))
    for territory, tz, emptied in by_territory.values():
        rounds = territory.collection
        after = next_rounds(np.concatenate([times for _, times, _, _ in emptied]), rounds, tz)
        at = 0
        for d, times, fills, rate in emptied:
            saved = avoidable_emptyings(times, fills, rate, rounds.threshold_pct, after[at:at + times.size])
            at += times.size
            total += int(fills.size)
            avoidable += saved
            by_bin[d.id] = saved
    by_bin = {d.id: by_bin[d.id] for d in bins if d.id in by_bin}  # in the bins' order
    return Outcome(100 * avoidable / total if total else None,
                   "emptyings the round plan would have skipped (fill before + the bin's fill rate × time to the "
                   "next round still below the territory's collection.threshold_pct) ÷ emptyings; fill rate: "
                   "Σ fill before its emptyings ÷ days observed", bins,
                   {"emptyings": total, "avoidable": avoidable, "by_bin": by_bin},
                   caveats=[caveat_texts.MEAN_FILL_RATE])


def _territory_of(ctx: Context, site_id: str) -> tuple[Territory, ZoneInfo] | None:
    """A site's territory and its time zone (None for a site or territory not in the registry)."""
    key = ("territory_of", site_id)
    if key not in ctx.memo:
        site = ctx.registry.site(site_id)
        territory = ctx.registry.territory(site.territory) if site else None
        ctx.memo[key] = None if territory is None else (territory, ctx.site_timezone(site))
    return ctx.memo[key]  # type: ignore[return-value]
