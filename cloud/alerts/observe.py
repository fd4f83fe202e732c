"""What the alert rules look at, read from the store and the registry, and the rules run
on it: one evaluation of a territory's alerts at an instant."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

from boucle.registry import Registry, Territory
from boucle.storage import RECEIVED, Store
from cloud.alerts import rules
from cloud.alerts.rules import Finding
from cloud.bin_forecasts import forecasts
from cloud.indicators import Period, References, Scope, load_context
from cloud.indicators.water import leak_suspected, night_minima, water_meters
from cloud.rounds import next_round

SLOT = 900


def evaluate_territory(store: Store, registry: Registry, territory: Territory, now: float,
                       references: References) -> tuple[list[Finding], set[tuple[str, str]]]:
    """The findings of a territory's rules now, and the (territory, rule) pairs evaluated
    (a live alert of an evaluated pair that is not found again is resolved)."""
    settings = territory.alerts
    on = [r for r in rules.RULES if r not in settings.off]
    devices = registry.devices_of(territory.id)
    findings: list[Finding] = []
    seen = store.last_seen([d.id for d in devices])
    silent = set()
    for d in devices:
        last = seen.get(d.id, (None, 0.0))[0]
        found = rules.device_silent(d.id, d.interval_s, last, now, settings, territory.id, d.site)
        if found is not None:
            silent.add(d.id)
            if "device_silent" in on:
                findings.append(found)
    if "data_gap" in on:
        start = int(now) - settings.gap_lookback_h * 3600
        for d in devices:
            if d.id in silent:
                continue
            times = [r.ts for r in store.readings(d.id, start, int(now) + 1, [RECEIVED]) if r.ts >= start]
            found = rules.data_gap(d.id, d.interval_s, times, settings, territory.id, d.site)
            if found is not None:
                findings.append(found)
    if "bin_overflow" in on:
        findings += _bin_overflows(store, registry, territory, now)
    if "base_load_high" in on or "water_leak" in on:
        findings += _night_findings(store, registry, territory, now, references, on)
    return findings, {(territory.id, r) for r in on}


def _bin_overflows(store: Store, registry: Registry, territory: Territory, now: float) -> list[Finding]:
    c = territory.collection
    bins = [d for d in registry.devices_of(territory.id) if d.kind == "waste"]
    if not bins:
        return []
    due = next_round(now, c, ZoneInfo(territory.timezone))
    out = []
    for device, f in forecasts(store, bins, int(now) - c.lookback_days * 86400, int(now) + 1).items():
        site = registry.device(device).site  # type: ignore[union-attr]
        found = rules.bin_overflow(f, due, c.threshold_pct, territory.id, site)
        if found is not None:
            out.append(found)
    return out


def _night_findings(store: Store, registry: Registry, territory: Territory, now: float, references: References,
                    on: list[str]) -> list[Finding]:
    """base_load_high and water_leak: both read the nights of the last weeks."""
    settings = territory.alerts
    nights = settings.base_load_nights + 2
    end = int(now) // SLOT * SLOT
    period = Period(end - nights * 86400, end)
    ctx = load_context(store, registry, Scope("territory", (territory.id,)), period,
                       ["energy.base_load", "water.leak_suspected"], references)
    out = []
    for site in ctx.sites:
        meters = ctx.energy_devices("grid_import", [site])
        if "base_load_high" in on and meters:
            found = rules.base_load_high(site.id, night_minima(ctx, site, meters), settings, territory.id)
            if found is not None:
                out.append(found)
    meters_of = {s.id: [d for d in water_meters(ctx) if d.site == s.id] for s in ctx.sites}
    if "water_leak" in on and any(meters_of.values()):
        latest = max((n for s in ctx.sites if meters_of[s.id] for n in night_minima(ctx, s, meters_of[s.id])),
                     default=None)
        sites = (leak_suspected(ctx).breakdown or {}).get("sites", {})
        for site_id, run in sites.items():
            # a run that ended before the last night or the one before it is over
            if latest is not None and date.fromisoformat(run["until"]) >= date.fromisoformat(latest) - timedelta(1):
                out.append(rules.water_leak(site_id, run["nights_in_a_row"], run["until"], territory.id))
    return out
