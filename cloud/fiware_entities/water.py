"""Water meters as FIWARE WaterConsumptionObserved entities (dataModel.WaterConsumption)."""

from __future__ import annotations

from dataclasses import dataclass

from boucle.registry import Registry
from cloud.access import Context
from cloud.fiware import ngsi_entity, point
from cloud.fiware_entities import newest
from cloud.indicators import Period, Scope, load_context
from cloud.timefmt import iso

CONTEXT = "https://raw.githubusercontent.com/smart-data-models/dataModel.WaterConsumption/master/context.jsonld"
PATH = "water-consumption"
NAME = "water"
SUMMARY = "water meters as FIWARE WaterConsumptionObserved entities (flows over the period)"


@dataclass(frozen=True)
class WaterMeterState:
    """What is known of a water meter: registry facts, its newest counter, the flows of the
    period and whether its site's night flow persists (water.leak_suspected)."""

    device_id: str
    site_id: str
    location: tuple[float, float]
    water_l: int | None
    observed: str | None
    min_flow_lph: float | None
    max_flow_lph: float | None
    persistence: str
    """alarmFlowPersistence: "Nothing to report", "In progress persistence" or "Past Persistence
    during the period"."""


def entity(state: WaterMeterState, key_values: bool = False) -> dict:
    """A water meter as a WaterConsumptionObserved entity. waterConsumption is the device's
    own cumulative counter in m³ (it starts at 0 when the board does, not at the meter's dial;
    a number with the litres as decimals where the model says integer)."""
    entity = {
        "id": f"urn:ngsi-ld:WaterConsumptionObserved:boucle:{state.device_id}",
        "type": "WaterConsumptionObserved",
        "waterConsumption": None if state.water_l is None else state.water_l / 1000,
        "minFlow": state.min_flow_lph,
        "maxFlow": state.max_flow_lph,
        "alarmFlowPersistence": state.persistence,
        "alarmInProgress": int(state.persistence == "In progress persistence"),
        "dateObserved": state.observed,
        "location": point(state.location),
        "refDevice": f"urn:ngsi-ld:Device:boucle:{state.device_id}",
        "refSite": f"urn:ngsi-ld:Site:boucle:{state.site_id}",
    }
    return ngsi_entity(entity, key_values)


def states(ctx: Context, reg: Registry, scope: Scope, period: Period) -> list[WaterMeterState]:
    """Each water meter of the scope: newest counter, the min and max of its 15-minute flows
    (L/h, intervals with readings on both sides), and its site's night-flow persistence."""
    from cloud.indicators.water import leak_suspected, water_meters

    ictx = load_context(ctx.store, reg, scope, period, ["water.leak_suspected"], ctx.references)
    meters = [d for d in water_meters(ictx) if d.site == reg.device(d.id).site]  # where each is now
    suspected = leak_suspected(ictx).breakdown or {}
    last_night = max((n for s in ictx.sites for n in _nights(ictx, s, meters)), default=None)
    seen, latest_of = newest(ctx, meters, ["water_l"])
    out = []
    for d in meters:
        latest = latest_of[d.id]
        f = ictx.frame(d)
        ok = f.covered & f.present
        flows = f.slots_wh[ok] * 3600 / ictx.interval_seconds[ok]
        leak = suspected.get("sites", {}).get(d.site)
        persistence = ("Nothing to report" if leak is None else
                       "In progress persistence" if leak["until"] == last_night else "Past Persistence during the period")
        out.append(WaterMeterState(
            device_id=d.id, site_id=d.site, location=reg.site(d.site).location, water_l=latest.get("water_l"),
            observed=iso(seen[d.id][0]) if d.id in seen else None,
            min_flow_lph=round(float(flows.min()), 3) if flows.size else None,
            max_flow_lph=round(float(flows.max()), 3) if flows.size else None, persistence=persistence))
    return out


def _nights(ictx, site, meters) -> list[str]:
    from cloud.indicators.water import night_minima

    mine = [d for d in meters if d.site == site.id]
    return list(night_minima(ictx, site, mine)) if mine else []
