"""Indicator endpoints: sets for a site or territory, comparison, series, symbiosis, pooling.

Every answer is computed by `cloud.indicators` and cached per (query, data version); the
`X-Cache` header says whether it came from the cache. `format=csv` gives a spreadsheet.
Each request's cost is checked before it runs and charged when it is computed (cloud.budget).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from boucle.registry import Registry
from cloud.access import Budget, Context, Ctx, Who, site_or_404, territory_or_404
from cloud.budget import Cost, RequestBudget, period_cost, series_cost
from cloud.citations import citations
from cloud.csv_export import csv_response, indicator_rows, series_rows
from cloud.indicators import (
    CATALOGUE,
    Period,
    Scope,
    compute_indicators,
    indicator_series,
    pooling_detail,
    symbiosis_detail,
)
from cloud.models import (
    Comparison,
    IndicatorOut,
    IndicatorSet,
    LedgerCitation,
    Pooling,
    Series,
    SeriesPoint,
    Symbiosis,
    SymbiosisMatch,
    plain,
)
from cloud.params import (
    FormatQuery,
    IdsQuery,
    IndicatorId,
    SiteId,
    StepQuery,
    TerritoryId,
    check_steps,
    get_period,
    parse_ids,
    parse_list,
    parse_step,
)
from cloud.period_compare import CompareTo, other_period, with_comparison
from cloud.problems import ApiProblem
from cloud.timefmt import iso, period_out

router = APIRouter(prefix="/v1", tags=["indicators"])
When = Annotated[Period, Depends(get_period)]
MAX_COMPARED = 20
CompareQuery = Annotated[CompareTo | None, Query(
    description="Also give each indicator against another period: previous (the same length just before) "
                "or year (the same dates a year earlier), with the change and whether it is an improvement.")]
CSV_OK = {200: {"content": {"text/csv": {"example": "scope,id,name,value,unit,from,to,coverage,...\r\n"}},
                "description": "JSON, or CSV with `format=csv`."}}


def cached(ctx: Context, registry: Registry, key: Hashable, compute: Callable[[], Any],
           response: Response, budget: RequestBudget, cost: Cost) -> Any:
    """The cached answer, else `compute()` once the time is not up and the cost is charged."""
    def metered() -> Any:
        budget.check_time()
        budget.charge(cost)
        return compute()

    answer, hit = ctx.cache.get_or_compute(key, ctx.store.data_version(), registry, metered)
    response.headers["X-Cache"] = "hit" if hit else "miss"
    return answer


def indicator_out(value, sources: list[LedgerCitation] | None = None) -> IndicatorOut:
    return IndicatorOut(sources=sources or [], id=value.id, name=value.name, value=plain(value.value), unit=value.unit,
                        period=period_out(value.period), formula=value.formula,
                        coverage=min(1.0, max(0.0, value.coverage)), reference=plain(value.reference),
                        standing=value.standing, breakdown=plain(value.breakdown), caveats=list(value.caveats))


def indicator_set(ctx: Context, registry: Registry, scope: Scope, period: Period, ids: list[str] | None,
                  response: Response, budget: RequestBudget) -> IndicatorSet:
    def compute() -> IndicatorSet:
        values = compute_indicators(ctx.store, registry, scope, period, ids, ctx.references)
        sources = citations(ctx.store, registry, scope, period)
        return IndicatorSet(scope={"kind": scope.kind, "ids": list(scope.ids)}, period=period_out(period),
                            indicators=[indicator_out(v, sources) for v in values])

    key = ("indicators", scope, period, tuple(ids) if ids else None)
    return cached(ctx, registry, key, compute, response, budget, period_cost(registry, scope, period))


def compared_set(ctx: Context, registry: Registry, scope: Scope, period: Period, ids: list[str] | None,
                 compare: CompareTo | None, response: Response, budget: RequestBudget) -> IndicatorSet:
    """The indicator set, with each indicator against the other period when `compare` is given
    (both computed and cached as two ordinary sets: the same values as asking for each)."""
    result = indicator_set(ctx, registry, scope, period, ids, response, budget)
    if compare is None:
        return result
    other = other_period(period, compare)
    budget.check_cost(period_cost(registry, scope, other))
    before = indicator_set(ctx, registry, scope, other, ids, response, budget)
    return with_comparison(result, before, compare, ctx.references)


def as_format(model, fmt: str, rows: Callable[[], list[list[str]]], filename: str, response: Response):
    if fmt == "csv":
        return csv_response(rows(), filename, {"X-Cache": response.headers.get("X-Cache", "miss")})
    return model


@router.get("/territories/{territory_id}/indicators", response_model=IndicatorSet, responses=CSV_OK,
            summary="Indicators of a territory over a period (default: the last 30 days)")
def territory_indicators(territory_id: TerritoryId, ctx: Ctx, who: Who, period: When, response: Response,
                         budget: Budget, ids: IdsQuery = None, fmt: FormatQuery = "json",
                         compare: CompareQuery = None):
    reg = ctx.registry
    territory_or_404(reg, who, territory_id)
    scope = Scope("territory", (territory_id,))
    budget.check_cost(period_cost(reg, scope, period))
    result = compared_set(ctx, reg, scope, period, parse_ids(ids), compare, response, budget)
    return as_format(result, fmt, lambda: indicator_rows([result]), f"{territory_id}-indicators.csv", response)


@router.get("/sites/{site_id}/indicators", response_model=IndicatorSet, responses=CSV_OK,
            summary="Indicators of a site over a period (default: the last 30 days)")
def site_indicators(site_id: SiteId, ctx: Ctx, who: Who, period: When, response: Response, budget: Budget,
                    ids: IdsQuery = None, fmt: FormatQuery = "json", compare: CompareQuery = None):
    reg = ctx.registry
    site_or_404(reg, who, site_id)
    scope = Scope("site", (site_id,))
    budget.check_cost(period_cost(reg, scope, period))
    result = compared_set(ctx, reg, scope, period, parse_ids(ids), compare, response, budget)
    return as_format(result, fmt, lambda: indicator_rows([result]), f"{site_id}-indicators.csv", response)


@router.get("/compare", response_model=Comparison, responses=CSV_OK,
            summary="Indicators of several territories side by side, and of all of them together")
def compare(ctx: Ctx, who: Who, period: When, response: Response, budget: Budget,
            territories: Annotated[str, Query(
                max_length=1000, description=f"Comma-separated territory ids (at most {MAX_COMPARED}).",
                openapi_examples={"two": {"value": "ecully,zi-meyzieu"}})],
            ids: IdsQuery = None, fmt: FormatQuery = "json"):
    reg = ctx.registry
    chosen = parse_list("territories", territories, MAX_COMPARED)
    for t in chosen:
        territory_or_404(reg, who, t)
    wanted = parse_ids(ids)
    scopes = [Scope("territory", (t,)) for t in chosen]
    combined_scope = Scope("territories", tuple(chosen))
    costs = [period_cost(reg, scope, period) for scope in [*scopes, combined_scope]]
    budget.check_cost(sum(costs[1:], costs[0]))
    each = [indicator_set(ctx, reg, scope, period, wanted, response, budget) for scope in scopes]
    combined = indicator_set(ctx, reg, combined_scope, period, wanted, response, budget)
    result = Comparison(period=period_out(period), territories=each, combined=combined)
    return as_format(result, fmt, lambda: indicator_rows([*each, combined]), "comparison.csv", response)


def series_of(ctx: Context, registry: Registry, scope: Scope, indicator_id: str, period: Period,
              step: str, response: Response, budget: RequestBudget) -> Series:
    if indicator_id not in CATALOGUE:
        raise ApiProblem(404, "Indicator not found",
                         f"no indicator {indicator_id!r}; known: {', '.join(CATALOGUE)}")
    step_s = parse_step(step)
    check_steps(period, step_s)
    cost = budget.check_cost(series_cost(registry, scope, period, step_s))

    def compute() -> Series:
        values = indicator_series(ctx.store, registry, scope, indicator_id, period, step_s, ctx.references,
                                  each_step=budget.check_time)
        spec = CATALOGUE[indicator_id]
        unit = values[0].unit if values else spec.unit
        return Series(scope={"kind": scope.kind, "ids": list(scope.ids)}, indicator=indicator_id, name=spec.name,
                      unit=unit, step_s=step_s, period=period_out(period),
                      sources=citations(ctx.store, registry, scope, period),
                      points=[SeriesPoint(**{"from": iso(v.period.start), "to": iso(v.period.end)},
                                          value=plain(v.value), coverage=min(1.0, max(0.0, v.coverage)),
                                          standing=v.standing) for v in values])

    return cached(ctx, registry, ("series", scope, indicator_id, period, step_s), compute, response, budget, cost)


@router.get("/territories/{territory_id}/indicators/{indicator_id}/series", response_model=Series,
            responses=CSV_OK, summary="One indicator of a territory as a time series")
def territory_series(territory_id: TerritoryId, indicator_id: IndicatorId, ctx: Ctx, who: Who, period: When,
                     response: Response, budget: Budget, step: StepQuery = "1d", fmt: FormatQuery = "json"):
    reg = ctx.registry
    territory_or_404(reg, who, territory_id)
    result = series_of(ctx, reg, Scope("territory", (territory_id,)), indicator_id, period, step, response, budget)
    return as_format(result, fmt, lambda: series_rows(result), f"{territory_id}-{indicator_id}.csv", response)


@router.get("/sites/{site_id}/indicators/{indicator_id}/series", response_model=Series,
            responses=CSV_OK, summary="One indicator of a site as a time series")
def site_series(site_id: SiteId, indicator_id: IndicatorId, ctx: Ctx, who: Who, period: When,
                response: Response, budget: Budget, step: StepQuery = "1d", fmt: FormatQuery = "json"):
    reg = ctx.registry
    site_or_404(reg, who, site_id)
    result = series_of(ctx, reg, Scope("site", (site_id,)), indicator_id, period, step, response, budget)
    return as_format(result, fmt, lambda: series_rows(result), f"{site_id}-{indicator_id}.csv", response)


@router.get("/territories/{territory_id}/symbiosis", response_model=Symbiosis,
            summary="Symbiosis opportunities: a site's waste output matching another's declared need")
def symbiosis(territory_id: TerritoryId, ctx: Ctx, who: Who, period: When, response: Response, budget: Budget,
              everywhere: Annotated[bool, Query(description="Also match needs of sites outside the territory "
                                                            "(admin keys only).")] = False) -> Symbiosis:
    reg = ctx.registry
    territory_or_404(reg, who, territory_id)
    if everywhere and not who.admin:
        raise ApiProblem(403, "Admin key required", "only an admin key may match needs outside the territory")
    scope = Scope("territory", (territory_id,))
    cost = budget.check_cost(period_cost(reg, scope, period))

    def compute() -> Symbiosis:
        matches = plain(symbiosis_detail(ctx.store, reg, scope, period, everywhere, ctx.references))
        return Symbiosis(scope={"kind": scope.kind, "ids": list(scope.ids)}, period=period_out(period),
                         matches=[SymbiosisMatch(**m) for m in matches],
                         matchable_kg_per_month=sum(m["matchable_kg_per_month"] for m in matches))

    return cached(ctx, reg, ("symbiosis", scope, period, everywhere), compute, response, budget, cost)


@router.get("/territories/{territory_id}/pooling", response_model=Pooling,
            summary="Pooling gain: PV surplus shared between sites within the legal perimeter")
def pooling(territory_id: TerritoryId, ctx: Ctx, who: Who, period: When, response: Response, budget: Budget,
            max_distance_km: Annotated[float | None, Query(
                gt=0, le=100, description="Perimeter between producer and consumer (default: references, 2 km).")] = None,
            ) -> Pooling:
    reg = ctx.registry
    territory_or_404(reg, who, territory_id)
    scope = Scope("territory", (territory_id,))
    cost = budget.check_cost(period_cost(reg, scope, period))

    def compute() -> Pooling:
        detail = plain(pooling_detail(ctx.store, reg, scope, period, max_distance_km, ctx.references))
        return Pooling(scope={"kind": scope.kind, "ids": list(scope.ids)}, period=period_out(period), **detail)

    return cached(ctx, reg, ("pooling", scope, period, max_distance_km), compute, response, budget, cost)
