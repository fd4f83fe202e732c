"""FIWARE NGSI-LD representations: KeyPerformanceIndicator, WasteContainer and
WaterConsumptionObserved entities."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from boucle.registry import Registry
from cloud.access import Budget, Context, Ctx, Who, site_or_404, territory_or_404
from cloud.budget import RequestBudget, period_cost
from cloud.fiware import (
    MEDIA_TYPE,
    ContainerState,
    WaterMeterState,
    key_performance_indicator,
    waste_container,
    water_consumption_observed,
)
from cloud.indicator_routes import When, cached, indicator_set
from cloud.indicators import Period, Scope, load_context
from cloud.params import IdsQuery, SiteId, TerritoryId, parse_ids
from cloud.timefmt import iso

router = APIRouter(prefix="/v1/fiware", tags=["FIWARE"])
Options = Annotated[str | None, Query(
    pattern="^(keyValues|normalized)$",
    description="`normalized` (default: NGSI-LD Property objects) or `keyValues` (plain values).")]
LD_OK = {200: {"content": {MEDIA_TYPE: {}}, "description": "A JSON-LD array of NGSI-LD entities."}}


def ld_response(entities: list[dict], response: Response) -> JSONResponse:
    return JSONResponse(entities, media_type=MEDIA_TYPE, headers={"X-Cache": response.headers.get("X-Cache", "miss")})


def _kpis(ctx: Context, reg: Registry, scope: Scope, period: Period, ids, name: str, location, options,
          response: Response, budget: RequestBudget) -> JSONResponse:
    budget.check_cost(period_cost(reg, scope, period))
    result = indicator_set(ctx, reg, scope, period, parse_ids(ids), response, budget)
    entities = [key_performance_indicator(v, scope.kind, scope.ids[0], name, location, options == "keyValues")
                for v in result.indicators]
    return ld_response(entities, response)


@router.get("/territories/{territory_id}/key-performance-indicators", responses=LD_OK,
            summary="A territory's indicators as FIWARE KeyPerformanceIndicator entities")
def territory_kpis(territory_id: TerritoryId, ctx: Ctx, who: Who, period: When, response: Response,
                   budget: Budget, ids: IdsQuery = None, options: Options = None) -> JSONResponse:
    reg = ctx.registry
    t = territory_or_404(reg, who, territory_id)
    return _kpis(ctx, reg, Scope("territory", (t.id,)), period, ids, t.name, t.centroid, options, response, budget)


@router.get("/sites/{site_id}/key-performance-indicators", responses=LD_OK,
            summary="A site's indicators as FIWARE KeyPerformanceIndicator entities")
def site_kpis(site_id: SiteId, ctx: Ctx, who: Who, period: When, response: Response, budget: Budget,
              ids: IdsQuery = None, options: Options = None) -> JSONResponse:
    reg = ctx.registry
    s = site_or_404(reg, who, site_id)
    return _kpis(ctx, reg, Scope("site", (s.id,)), period, ids, s.name, s.location, options, response, budget)


def _newest(ctx: Context, devices, fields: list[str]) -> tuple[dict, dict[str, dict]]:
    """The devices' last_seen, and the `fields` of each one's newest reading ({} if none)."""
    seen = ctx.store.last_seen([d.id for d in devices])
    newest: dict[str, dict] = {}
    for d in devices:
        rows = ctx.store.readings(d.id, seen[d.id][0], seen[d.id][0] + 1, fields) if d.id in seen else []
        newest[d.id] = rows[-1].values if rows else {}
    return seen, newest


def container_states(ctx: Context, reg: Registry, scope: Scope, period: Period) -> list[ContainerState]:
    """Each bin of the scope: newest reading, and its last emptying within the period."""
    ictx = load_context(ctx.store, reg, scope, period, ["waste.fill_at_collection"], ctx.references)
    bins = [d for d in ictx.waste_devices() if d.site == reg.device(d.id).site]  # where each is now
    seen, newest = _newest(ctx, bins, ["fill_pct", "weight_g"])
    out = []
    for d in bins:
        latest = newest[d.id]
        emptied = ictx.frame(d).emptied
        site = reg.site(d.site)
        out.append(ContainerState(
            device_id=d.id, site_id=d.site, stream=d.stream, location=site.location,
            capacity_kg=d.capacity_kg, capacity_l=d.capacity_l, fill_pct=latest.get("fill_pct"),
            weight_g=latest.get("weight_g"), observed=iso(seen[d.id][0]) if d.id in seen else None,
            last_emptying=iso(int(emptied[-1, 0])) if emptied.size else None))
    return out


def _entities(ctx: Context, reg: Registry, scope: Scope, period: Period, options, response: Response,
              budget: RequestBudget, states, entity) -> JSONResponse:
    """The entities `entity(state)` of the scope's `states(...)`, cached like indicator sets."""
    cost = budget.check_cost(period_cost(reg, scope, period))
    found = cached(ctx, reg, (states.__name__, scope, period), lambda: states(ctx, reg, scope, period),
                   response, budget, cost)
    return ld_response([entity(s, options == "keyValues") for s in found], response)


def _containers(ctx: Context, reg: Registry, scope: Scope, period: Period, options, response: Response,
                budget: RequestBudget):
    return _entities(ctx, reg, scope, period, options, response, budget, container_states, waste_container)


@router.get("/territories/{territory_id}/waste-containers", responses=LD_OK,
            summary="A territory's bins as FIWARE WasteContainer entities (emptyings searched over the period)")
def territory_containers(territory_id: TerritoryId, ctx: Ctx, who: Who, period: When, response: Response,
                         budget: Budget, options: Options = None) -> JSONResponse:
    reg = ctx.registry
    territory_or_404(reg, who, territory_id)
    return _containers(ctx, reg, Scope("territory", (territory_id,)), period, options, response, budget)


@router.get("/sites/{site_id}/waste-containers", responses=LD_OK,
            summary="A site's bins as FIWARE WasteContainer entities (emptyings searched over the period)")
def site_containers(site_id: SiteId, ctx: Ctx, who: Who, period: When, response: Response, budget: Budget,
                    options: Options = None) -> JSONResponse:
    reg = ctx.registry
    site_or_404(reg, who, site_id)
    return _containers(ctx, reg, Scope("site", (site_id,)), period, options, response, budget)


def water_states(ctx: Context, reg: Registry, scope: Scope, period: Period) -> list[WaterMeterState]:
    """Each water meter of the scope: newest counter, the min and max of its 15-minute flows
    (L/h, intervals with readings on both sides), and its site's night-flow persistence."""
    from cloud.indicators.water import leak_suspected, water_meters

    ictx = load_context(ctx.store, reg, scope, period, ["water.leak_suspected"], ctx.references)
    meters = [d for d in water_meters(ictx) if d.site == reg.device(d.id).site]  # where each is now
    suspected = leak_suspected(ictx).breakdown or {}
    last_night = max((n for s in ictx.sites for n in _nights(ictx, s, meters)), default=None)
    seen, newest = _newest(ctx, meters, ["water_l"])
    out = []
    for d in meters:
        latest = newest[d.id]
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


@router.get("/territories/{territory_id}/water-consumption", responses=LD_OK,
            summary="A territory's water meters as FIWARE WaterConsumptionObserved entities (flows over the period)")
def territory_water(territory_id: TerritoryId, ctx: Ctx, who: Who, period: When, response: Response,
                    budget: Budget, options: Options = None) -> JSONResponse:
    reg = ctx.registry
    territory_or_404(reg, who, territory_id)
    return _entities(ctx, reg, Scope("territory", (territory_id,)), period, options, response, budget, water_states,
                     water_consumption_observed)


@router.get("/sites/{site_id}/water-consumption", responses=LD_OK,
            summary="A site's water meters as FIWARE WaterConsumptionObserved entities (flows over the period)")
def site_water(site_id: SiteId, ctx: Ctx, who: Who, period: When, response: Response, budget: Budget,
               options: Options = None) -> JSONResponse:
    reg = ctx.registry
    site_or_404(reg, who, site_id)
    return _entities(ctx, reg, Scope("site", (site_id,)), period, options, response, budget, water_states,
                     water_consumption_observed)
