"""Device health for a technician: which sensor to visit, and why
(`GET /v1/territories/{id}/device-health`, `GET /v1/sites/{id}/device-health`).

From what the gateway keeps per device (boucle.storage: the newest reading's time and
when it was received, the latest health message: buffer depth, readings dropped on the
device, RSSI, firmware, last error) and the period's data coverage per device
(data.coverage's breakdown). `visit_reasons` is the pure triage; each reason has a code,
its values and its text in each language (the alerts' templating, cloud.alerts.texts);
devices come sorted with those to visit first.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

from boucle.registry import Device, HealthSettings, Registry
from cloud.access import Budget, Context, Ctx, Who, site_or_404, territory_or_404
from cloud.alerts.texts import in_each_language
from cloud.bin_forecasts import fill_now_pct, load_kg
from cloud.budget import RequestBudget, period_cost
from cloud.fiware_entities import newest
from cloud.indicator_routes import indicator_set
from cloud.indicators import Period, Scope
from cloud.models import PeriodOut
from cloud.params import SiteId, TerritoryId, get_period
from cloud.timefmt import iso, period_out

router = APIRouter(prefix="/v1", tags=["drill-down"])
When = Annotated[Period, Depends(get_period)]

DEFAULTS = HealthSettings()
"""The thresholds where a territory sets none (`[territories.device_health]`, docs/registry.md):
under -80 dBm a Wi-Fi link loses packets; 100 readings in the buffer mean trouble sending;
coverage under 90 % as the indicators' low-coverage caveat."""


class VisitReason(BaseModel):
    code: Literal["offline", "error", "low_coverage", "dropped", "backlog", "weak_signal"]
    values: dict[str, int | float | str | None] = Field(
        description="The figures the reason names: offline silent_s (null: never seen), error error, "
                    "low_coverage coverage (%), dropped dropped, backlog buffer_depth, weak_signal rssi (dBm).")
    messages: dict[str, str] = Field(description="The reason in each language of the dashboard: {en, fr}.")


class DeviceHealth(BaseModel):
    id: str
    site: str
    kind: str
    channel: str | None = None
    stream: str | None = None
    online: bool = Field(description="Newest reading received less than BOUCLE_ONLINE_AFTER_S ago (or its "
                                     "territory's device_health.offline_intervals of its interval_s).")
    last_seen: str | None = Field(description="Event time of the newest reading, ISO 8601 UTC.")
    silent_s: int | None = Field(description="Seconds since the gateway received its newest reading.")
    interval_s: int
    buffer_depth: int | None = Field(description="Readings waiting in the device's buffer (health message).")
    dropped: int | None = Field(description="Readings the device dropped (buffer full), since its boot.")
    rssi: int | None = Field(description="Wi-Fi signal, dBm (health message).")
    firmware: str | None = None
    boot: int | None = None
    reset_cause: str | None = None
    error: str | None = Field(default=None, description="The last problem the device reported.")
    coverage: float | None = Field(description="Readings received ÷ expected over the period, %.")
    fill_pct: float | None = Field(default=None, description="A bin's fill from its newest reading, 0–100: its "
                                   "fill sensor, else weight ÷ capacity_kg (as FIWARE fillingLevel × 100).")
    weight_kg: float | None = Field(default=None, description="A scale bin's load from its newest reading, kg.")
    visit: list[str] = Field(description="Why a technician should go and see it, in English (empty: nothing to do).")
    visit_reasons: list[VisitReason] = Field(default=[], description="The same reasons, each as its code and "
                                             "values, and its text in each language (`messages`).")


class DeviceHealthList(BaseModel):
    scope: dict
    period: PeriodOut
    to_visit: int
    devices: list[DeviceHealth]


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


VISIT_TEXTS: dict[str, dict[str, str]] = {
    "offline.never": {"en": "offline: never seen", "fr": "hors ligne : jamais vu"},
    "offline.min": {"en": "offline: no reading received for {n} min",
                    "fr": "hors ligne : aucune mesure reçue depuis {n} min"},
    "offline.h": {"en": "offline: no reading received for {n} h", "fr": "hors ligne : aucune mesure reçue depuis {n} h"},
    "offline.days": {"en": "offline: no reading received for {n} days",
                     "fr": "hors ligne : aucune mesure reçue depuis {n} jours"},
    "error": {"en": "reports an error: {error}", "fr": "signale une erreur : {error}"},
    "low_coverage": {"en": "coverage {coverage:.0f} % over the period",
                     "fr": "couverture de {coverage:.0f} % sur la période"},
    "dropped": {"en": "dropped {dropped} readings (buffer full)", "fr": "{dropped} mesures perdues (tampon plein)"},
    "backlog": {"en": "{buffer_depth} readings waiting in its buffer",
                "fr": "{buffer_depth} mesures en attente dans son tampon"},
    "weak_signal": {"en": "weak Wi-Fi signal ({rssi} dBm)", "fr": "signal Wi-Fi faible ({rssi} dBm)"},
}
"""A reason's text per language, by its code (offline: by the unit of its silence, `n` of them)."""


def _reason(code: str, values: dict, template: str | None = None, **shown) -> VisitReason:
    return VisitReason(code=code, values=values,
                       messages=in_each_language(VISIT_TEXTS[template or code], {**values, **shown}))


def _offline(silent_s: int | None) -> VisitReason:
    if silent_s is None:
        return _reason("offline", {"silent_s": None}, "offline.never")
    if silent_s < 3600:
        unit, n = "min", silent_s // 60
    elif silent_s < 2 * 86400:
        unit, n = "h", silent_s // 3600
    else:
        unit, n = "days", silent_s // 86400
    return _reason("offline", {"silent_s": silent_s}, f"offline.{unit}", n=n)


def visit_reasons(d: DeviceHealth, limits: HealthSettings = DEFAULTS) -> list[VisitReason]:
    """Why to visit a device, most urgent first: silent (offline), a reported error, low
    coverage, readings dropped, a backlog in its buffer, a weak signal (`limits`: its territory's)."""
    out = [] if d.online else [_offline(d.silent_s)]
    if d.error:
        out.append(_reason("error", {"error": d.error}))
    if d.coverage is not None and d.coverage < limits.low_coverage_pct:
        out.append(_reason("low_coverage", {"coverage": d.coverage}))
    if d.dropped is not None and d.dropped >= limits.dropped_readings:
        out.append(_reason("dropped", {"dropped": d.dropped}))
    if d.buffer_depth is not None and d.buffer_depth >= limits.backlog_readings:
        out.append(_reason("backlog", {"buffer_depth": d.buffer_depth}))
    if d.rssi is not None and d.rssi < limits.weak_rssi_dbm:
        out.append(_reason("weak_signal", {"rssi": d.rssi}))
    return out


def health_settings(registry: Registry, device: Device) -> HealthSettings:
    """The device-health thresholds of the territory a device is in."""
    site = registry.site(device.site)
    territory = registry.territory(site.territory) if site else None
    return territory.device_health if territory else DEFAULTS


def is_online(device: Device, received: float | None, now: float, online_after_s: float,
              limits: HealthSettings) -> bool:
    """Its newest reading received less than `offline_intervals` of its intervals ago when
    its territory sets that, else less than BOUCLE_ONLINE_AFTER_S."""
    limit = online_after_s if limits.offline_intervals is None else limits.offline_intervals * device.interval_s
    return received is not None and now - received < limit


def bin_now(device: Device, latest: dict) -> dict:
    """A bin's fill_pct (rounded to 0.1) and weight_kg from its newest reading's values."""
    fill = fill_now_pct(latest.get("fill_pct"), latest.get("weight_g"), device.capacity_kg)
    return {"fill_pct": None if fill is None else round(fill, 1), "weight_kg": load_kg(latest.get("weight_g"))}


def device_health(ctx: Context, devices: list[Device], coverage: dict[str, float], now: float) -> list[DeviceHealth]:
    """Each device's health, those to visit first (most reasons first), then by id."""
    ids = [d.id for d in devices]
    seen, newest_of = newest(ctx, devices, ["fill_pct", "weight_g"], kind="waste")
    states = ctx.store.device_states(ids)
    out = []
    for d in devices:
        ts, received = seen.get(d.id, (None, None))
        health = states.get(d.id, {}).get("health")
        doc = health.doc if health else {}
        limits = health_settings(ctx.registry, d)
        row = DeviceHealth(
            id=d.id, site=d.site, kind=d.kind, channel=d.channel, stream=d.stream,
            online=is_online(d, received, now, ctx.settings.online_after_s, limits),
            last_seen=iso(ts), silent_s=int(now - received) if received is not None else None,
            interval_s=d.interval_s, buffer_depth=_int(doc.get("buffer_depth")), dropped=_int(doc.get("dropped")),
            rssi=_int(doc.get("rssi")), firmware=doc.get("fw") if isinstance(doc.get("fw"), str) else None,
            boot=_int(doc.get("boot")), reset_cause=doc.get("reset_cause") if isinstance(
                doc.get("reset_cause"), str) else None,
            error=doc.get("error") if isinstance(doc.get("error"), str) else None,
            coverage=coverage.get(d.id), visit=[], **bin_now(d, newest_of.get(d.id, {})))
        reasons = visit_reasons(row, limits)
        out.append(row.model_copy(update={"visit": [r.messages["en"] for r in reasons], "visit_reasons": reasons}))
    return sorted(out, key=lambda r: (-len(r.visit), r.online, r.id))


def health_list(ctx: Context, scope: Scope, devices: list[Device], period: Period, response: Response,
                budget: RequestBudget) -> DeviceHealthList:
    budget.check_cost(period_cost(ctx.registry, scope, period))
    (cov,) = indicator_set(ctx, ctx.registry, scope, period, ["data.coverage"], response, budget).indicators
    by_device = (cov.breakdown or {}).get("by_device", {})
    rows = device_health(ctx, devices, by_device, time.time())
    return DeviceHealthList(scope={"kind": scope.kind, "ids": list(scope.ids)}, period=period_out(period),
                            to_visit=sum(1 for r in rows if r.visit), devices=rows)


@router.get("/territories/{territory_id}/device-health", response_model=DeviceHealthList,
            summary="The territory's devices: online, last seen, buffer, dropped, RSSI, firmware, coverage, "
                    "and which to visit")
def territory_health(territory_id: TerritoryId, ctx: Ctx, who: Who, period: When, response: Response,
                     budget: Budget) -> DeviceHealthList:
    reg = ctx.registry
    territory_or_404(reg, who, territory_id)
    return health_list(ctx, Scope("territory", (territory_id,)), list(reg.devices_of(territory_id)), period,
                       response, budget)


@router.get("/sites/{site_id}/device-health", response_model=DeviceHealthList,
            summary="The site's devices, and which to visit")
def site_health(site_id: SiteId, ctx: Ctx, who: Who, period: When, response: Response,
                budget: Budget) -> DeviceHealthList:
    reg = ctx.registry
    site_or_404(reg, who, site_id)
    return health_list(ctx, Scope("site", (site_id,)), list(reg.devices_of_site(site_id)), period,
                       response, budget)
