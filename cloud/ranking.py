"""Ranking of a territory's sites by any indicator: top consumers, worst sorting rate,
highest base load per m² (`GET /v1/territories/{id}/ranking`).

Each site's value is its ordinary indicator set (the same cached computation as
`/v1/sites/{id}/indicators`), optionally divided by its floor area or its employees.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from cloud.access import Budget, Ctx, Who, territory_or_404
from cloud.budget import period_cost
from cloud.csv_export import cell
from cloud.indicator_routes import CSV_OK, as_format, indicator_set
from cloud.indicators import CATALOGUE, Period, Scope
from cloud.models import PeriodOut
from cloud.params import FormatQuery, TerritoryId, get_period
from cloud.problems import invalid_parameter
from cloud.timefmt import period_out

router = APIRouter(prefix="/v1", tags=["drill-down"])
Per = Literal["site", "m2", "employee"]
PER_UNIT = {"site": "", "m2": "/m²", "employee": "/employee"}


class RankedSite(BaseModel):
    rank: int | None = Field(description="1 is the first in the asked order; None for a site without a value.")
    site: str
    name: str
    value: float | None = Field(description="The indicator, divided by `per` when asked.")
    indicator_value: float | None = Field(description="The indicator itself, over the site.")
    coverage: float = Field(ge=0, le=1)
    standing: str | None = None
    floor_area_m2: float | None = None
    employees: int | None = None


class Ranking(BaseModel):
    territory: str
    indicator: str
    name: str
    unit: str
    per: str
    order: str
    period: PeriodOut
    sites: list[RankedSite]


def rank(rows: list[RankedSite], order: str) -> list[RankedSite]:
    """Sorted by value (`desc`: highest first), sites without a value last, ranks 1..n
    (equal values share a rank)."""
    valued = sorted((r for r in rows if r.value is not None), key=lambda r: r.value, reverse=order == "desc")
    out, previous, place = [], None, 0
    for i, r in enumerate(valued, 1):
        if r.value != previous:
            place, previous = i, r.value
        out.append(r.model_copy(update={"rank": place}))
    return out + [r.model_copy(update={"rank": None}) for r in rows if r.value is None]


RANKING_COLUMNS = ["rank", "site", "name", "value", "unit", "indicator", "indicator_value", "per", "coverage",
                   "standing", "floor_area_m2", "employees", "from", "to"]


def ranking_rows(r: Ranking) -> list[list[str]]:
    """The ranking as CSV rows, in its order (a site without a value: empty rank and value)."""
    return [RANKING_COLUMNS] + [[cell(x) for x in (
        s.rank, s.site, s.name, s.value, r.unit, r.indicator, s.indicator_value, r.per, s.coverage, s.standing,
        s.floor_area_m2, s.employees, r.period.start, r.period.end)] for s in r.sites]


def divided(value: float | None, by: float | None) -> float | None:
    return None if value is None or not by else value / by


@router.get("/territories/{territory_id}/ranking", response_model=Ranking, responses=CSV_OK,
            summary="The territory's sites ranked by one indicator (optionally per m² or per employee)")
def ranking(territory_id: TerritoryId, ctx: Ctx, who: Who, response: Response, budget: Budget,
            period: Annotated[Period, Depends(get_period)],
            indicator: Annotated[str, Query(max_length=64, description="Indicator id, e.g. energy.consumed, "
                                            "waste.sorting_rate, energy.base_load.")],
            per: Annotated[Per, Query(description="site (the value itself), m2 (÷ floor_area_m2) or "
                                                  "employee (÷ employees).")] = "site",
            order: Annotated[Literal["desc", "asc"], Query(description="desc: highest first.")] = "desc",
            fmt: FormatQuery = "json"):
    reg = ctx.registry
    territory_or_404(reg, who, territory_id)
    if indicator not in CATALOGUE:
        raise invalid_parameter("indicator", f"no indicator {indicator!r}; known: {', '.join(CATALOGUE)}")
    sites = [s for s in reg.sites_of(territory_id) if who.sees_site(reg, s.id)]
    scopes = [Scope("site", (s.id,)) for s in sites]
    if scopes:
        costs = [period_cost(reg, scope, period) for scope in scopes]
        budget.check_cost(sum(costs[1:], costs[0]))
    rows = []
    unit = CATALOGUE[indicator].unit
    for site, scope in zip(sites, scopes, strict=True):
        (v,) = indicator_set(ctx, reg, scope, period, [indicator], response, budget).indicators
        unit = v.unit
        by = {"site": 1.0, "m2": site.floor_area_m2, "employee": site.employees}[per]
        rows.append(RankedSite(rank=None, site=site.id, name=site.name, value=divided(v.value, by),
                               indicator_value=v.value, coverage=v.coverage, standing=v.standing,
                               floor_area_m2=site.floor_area_m2, employees=site.employees))
    result = Ranking(territory=territory_id, indicator=indicator, name=CATALOGUE[indicator].name,
                     unit=unit + PER_UNIT[per], per=per, order=order, period=period_out(period),
                     sites=rank(rows, order))
    return as_format(result, fmt, lambda: ranking_rows(result), f"{territory_id}-ranking-{indicator}.csv", response)
