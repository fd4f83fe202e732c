"""Circularity indicators: symbiosis opportunities and use of shared equipment."""

from __future__ import annotations

import numpy as np

from boucle.registry import Device
from cloud.indicators.context import Context
from cloud.indicators.geo import distance_km
from cloud.indicators.outcome import Outcome
from cloud.indicators.waste import G_PER_KG, weighing_devices

DAYS_PER_MONTH = 365.25 / 12


def symbiosis_matches(ctx: Context, everywhere: bool = False) -> list[dict]:
    """Pairs (waste output of site A, declared need of site B) of the same material.

    Supply is the deposited mass of A's bins of that stream over the period, per month; a
    pair is kept when B is within the need's max_distance_km of A. Ranked by the mass that
    could change hands per month (min of supply and need), then by distance. Only sites of
    the scope, unless `everywhere` (admin views): other organisations' outputs stay private.
    """
    months = ctx.period.seconds / 86400 / DAYS_PER_MONTH
    supply: dict[tuple[str, str], float] = {}
    for d in weighing_devices(ctx):
        key = (d.site, d.stream or "")
        supply[key] = supply.get(key, 0.0) + ctx.frame(d).amount / G_PER_KG / months
    in_scope = {s.id for s in ctx.sites}
    out = []
    for need in ctx.registry.needs:
        if not everywhere and need.site not in in_scope:
            continue
        taker = ctx.registry.site(need.site)
        for (site_id, stream), kg in supply.items():
            giver = ctx.registry.site(site_id)
            if stream != need.material or site_id == need.site or giver is None or taker is None:
                continue
            km = distance_km(giver.location, taker.location)
            if km <= need.max_distance_km and kg > 0:
                out.append({
                    "from_site": site_id, "to_site": need.site, "material": stream,
                    "distance_km": round(km, 3), "supply_kg_per_month": kg,
                    "need_kg_per_month": need.kg_per_month,
                    "matchable_kg_per_month": min(kg, need.kg_per_month),
                })
    out.sort(key=lambda m: (-m["matchable_kg_per_month"], m["distance_km"]))
    return out


def symbiosis(ctx: Context) -> Outcome:
    matches = symbiosis_matches(ctx)
    return Outcome(float(len(matches)),
                   "pairs (waste stream of site A, declared need of site B for that material) "
                   "within the need's max distance (haversine), ranked by min(supply, need) "
                   "per month then distance", weighing_devices(ctx),
                   {"matches": matches,
                    "matchable_kg_per_month": sum(m["matchable_kg_per_month"] for m in matches)})


def _idle_w(ctx: Context, device: Device) -> float:
    share = ctx.references.threshold("idle_fraction_of_rated")
    floor = ctx.references.threshold("idle_min_w")
    return max(floor, share * (device.rated_power_w or 0.0))


def fablab_machines(ctx: Context) -> list[Device]:
    """The meters whose profiles shared-equipment use reads: load meters of Fablabs."""
    return [m for s in ctx.sites if s.kind == "fablab" for m in ctx.energy_devices("load", [s])]


def active_seconds(ctx: Context, device: Device) -> float:
    """Machine time in the period: the 15-min intervals whose mean power is above the
    machine's idle threshold (a Fablab's machines are booked and used by the quarter-hour)."""
    wh = ctx.slots_wh(device)
    seconds = ctx.interval_seconds
    if ctx.interval_s is not None:  # every interval a quarter-hour: one threshold (the same values)
        return float(np.count_nonzero(wh > _idle_w(ctx, device) * ctx.interval_s / 3600)) * ctx.interval_s
    return float(seconds[wh > _idle_w(ctx, device) * seconds / 3600].sum())


def shared_equipment_use(ctx: Context) -> Outcome:
    """circular.shared_equipment_use: machine hours above idle ÷ opening hours of Fablabs."""
    fablabs = [s for s in ctx.sites if s.kind == "fablab"]
    devices, active, opening = [], 0.0, 0.0
    by_device: dict[str, float] = {}
    for site in fablabs:
        machines = ctx.energy_devices("load", [site])
        if not machines:
            continue
        open_s = sum(e - s for s, e in ctx.open_intervals(site))
        for m in machines:
            a = active_seconds(ctx, m)
            devices.append(m)
            active += a
            opening += open_s
            by_device[m.id] = 100 * a / open_s if open_s else 0.0
    return Outcome(100 * active / opening if opening else None,
                   "Σ machine hours ÷ Σ opening hours, over Fablab load meters; machine hours: the "
                   "15-min intervals with mean power above max(idle_min_w, idle_fraction_of_rated "
                   "× rated power)",
                   devices, {"by_device": by_device, "active_hours": active / 3600,
                             "opening_hours": opening / 3600})
