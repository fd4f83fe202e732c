"""Energy indicators: consumption, demand profile, local PV, pooling, greenhouse gas."""

from __future__ import annotations

from cloud.indicators.context import Context
from cloud.indicators.outcome import Outcome

WH_PER_KWH = 1000.0


def consumed(ctx: Context) -> Outcome:
    """energy.consumed: Σ reset-aware counter deltas of the scope's grid_import meters."""
    devices = ctx.energy_devices("grid_import")
    by_site: dict[str, float] = {}
    rejected = resets = 0
    for d in devices:
        e = ctx.energy(d)
        by_site[d.site] = by_site.get(d.site, 0.0) + e.total_wh / WH_PER_KWH
        rejected += e.deltas.rejected
        resets += e.deltas.resets
    value = sum(by_site.values()) if devices else None
    return Outcome(
        value,
        "Σ counter deltas of energy_wh over grid_import meters, readings start <= ts < end, each "
        "against the previous reading; a counter going down restarted from 0 (counts in full); "
        "deltas > 1.5 × rated power × Δt + 1 Wh rejected. Self-consumed PV not added (no export "
        "meter: see energy.self_consumption).",
        devices,
        {"by_site": by_site, "rejected_deltas": rejected, "resets": resets},
    )
