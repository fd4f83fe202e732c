"""FIWARE NGSI-LD representations: KeyPerformanceIndicator entities, and each kind's own
(cloud/fiware_entities/<kind>.py: WasteContainer, WaterConsumptionObserved)."""

from __future__ import annotations

from types import ModuleType
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from boucle.registry import Registry
from cloud.access import Budget, Context, Ctx, Who, site_or_404, territory_or_404
from cloud.budget import RequestBudget, period_cost
from cloud.fiware import MEDIA_TYPE, key_performance_indicator
from cloud.fiware_entities import entity_kinds
from cloud.indicator_routes import When, cached, indicator_set
from cloud.indicators import Period, Scope
from cloud.params import IdsQuery, SiteId, TerritoryId, parse_ids

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


def _entities(ctx: Context, reg: Registry, scope: Scope, period: Period, options, response: Response,
              budget: RequestBudget, kind: ModuleType) -> JSONResponse:
    """A kind's entities of the scope (its FIWARE module's states and entity), cached like
    indicator sets."""
    cost = budget.check_cost(period_cost(reg, scope, period))
    found = cached(ctx, reg, (kind.__name__, scope, period), lambda: kind.states(ctx, reg, scope, period),
                   response, budget, cost)
    return ld_response([kind.entity(s, options == "keyValues") for s in found], response)


def _kind_routes(kind: ModuleType) -> None:
    """/territories/{id}/<PATH> and /sites/{id}/<PATH> of a kind's FIWARE module."""

    def territory(territory_id: TerritoryId, ctx: Ctx, who: Who, period: When, response: Response,
                  budget: Budget, options: Options = None) -> JSONResponse:
        reg = ctx.registry
        territory_or_404(reg, who, territory_id)
        return _entities(ctx, reg, Scope("territory", (territory_id,)), period, options, response, budget, kind)

    def site(site_id: SiteId, ctx: Ctx, who: Who, period: When, response: Response, budget: Budget,
             options: Options = None) -> JSONResponse:
        reg = ctx.registry
        site_or_404(reg, who, site_id)
        return _entities(ctx, reg, Scope("site", (site_id,)), period, options, response, budget, kind)

    router.add_api_route(f"/territories/{{territory_id}}/{kind.PATH}", territory, methods=["GET"], responses=LD_OK,
                         summary=f"A territory's {kind.SUMMARY}", name=f"territory_{kind.NAME}")
    router.add_api_route(f"/sites/{{site_id}}/{kind.PATH}", site, methods=["GET"], responses=LD_OK,
                         summary=f"A site's {kind.SUMMARY}", name=f"site_{kind.NAME}")


for _module in entity_kinds().values():  # each kind's entities (cloud/fiware_entities/<kind>.py)
    _kind_routes(_module)
