"""data.coverage: readings received ÷ readings expected, per device, site and scope."""

from __future__ import annotations

from cloud.indicators.context import Context
from cloud.indicators.outcome import Outcome


def coverage(ctx: Context) -> Outcome:
    devices = ctx.devices
    placed: dict[str, list] = {}  # a device that moved has a placement per site it was at
    for d in devices:
        placed.setdefault(d.id, []).append(d)
    by_device = {i: round(ctx.coverage(mine) * 100, 3) for i, mine in placed.items()}
    of_site: dict[str, list] = {}
    for d in devices:
        of_site.setdefault(d.site, []).append(d)
    by_site = {}
    for site in ctx.sites:
        mine = of_site.get(site.id)
        if mine:
            by_site[site.id] = round(ctx.coverage(mine) * 100, 3)
    by_territory = {}
    for territory in ctx.territories:
        sites = {s.id for s in ctx.sites if s.territory == territory.id}
        mine = [d for d in devices if d.site in sites]
        if mine:
            by_territory[territory.id] = round(ctx.coverage(mine) * 100, 3)
    value = ctx.coverage(devices) * 100 if devices else None
    return Outcome(
        value,
        "Σ min(received, expected) ÷ Σ expected over the scope's devices; expected = time in "
        "the period (at this scope's sites) ÷ device interval_s; received = readings with "
        "start <= ts < end.",
        devices,
        {"by_territory": by_territory, "by_site": by_site, "by_device": by_device},
    )
