"""Collection rounds: which bins of a territory (and stream) to empty on a day, nearest the
depot first, and which can wait (cloud.rounds; docs/api.md "Collection rounds")."""

from __future__ import annotations

import time
from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from pydantic import BaseModel

from boucle.registry import Device, Registry, Territory
from cloud.access import Budget, Ctx, Who, territory_or_404
from cloud.bin_forecasts import forecasts
from cloud.budget import period_cost
from cloud.csv_export import csv_response
from cloud.indicators import Period, Scope
from cloud.params import FormatQuery, TerritoryId
from cloud.problems import invalid_parameter
from cloud.rounds import BinPlace, PlannedBin, RoundPlan, next_round, plan_round, round_at
from cloud.timefmt import iso

router = APIRouter(prefix="/v1", tags=["rounds"])
ROUND_COLUMNS = ["order", "action", "device", "site", "stream", "distance_km", "fill_at_round_pct",
                 "at_next_round_pct", "reaches_threshold"]


class PlannedBinOut(BaseModel):
    device: str
    site: str
    stream: str
    distance_km: float | None
    fill_at_round_pct: float | None
    """The forecast fill when the round starts."""
    at_next_round_pct: float | None
    """The forecast fill at the round after, had it waited."""
    reaches_threshold: str | None
    """When the forecast reaches the threshold (None: not within any horizon, or no forecast)."""


class RoundPlanOut(BaseModel):
    territory: str
    stream: str | None
    day: str
    round: str
    next_round: str
    threshold_pct: float
    depot: tuple[float, float] | None
    collect: list[PlannedBinOut]
    """Bins to empty at this round, nearest the depot first."""
    wait: list[PlannedBinOut]
    """Bins that can wait for the next round, soonest due first."""
    unknown: list[PlannedBinOut]
    """Bins without a forecast (fewer than two fill readings in the lookback)."""


def bins_of(registry: Registry, territory: Territory, stream: str | None) -> list[Device]:
    return [d for d in registry.devices_of(territory.id) if d.kind == "waste" and (stream is None or d.stream == stream)]


def territory_plan(registry: Registry, store, territory: Territory, stream: str | None, day: date | None,
                   now: float) -> tuple[date, RoundPlan]:
    """The plan of the round of `day` (default: the next round from now), forecast from the
    readings before the round (or before now, for a round still to come)."""
    c, tz = territory.collection, ZoneInfo(territory.timezone)
    round_ts = round_at(day, c, tz) if day is not None else next_round(now, c, tz)
    until = int(min(now, round_ts)) + 1
    bins = bins_of(registry, territory, stream)
    found = forecasts(store, bins, until - c.lookback_days * 86400, until)
    places = [BinPlace(d.id, d.site, d.stream or "", registry.site(d.site).location) for d in bins]  # type: ignore[union-attr]
    plan = plan_round(places, found, round_ts, next_round(round_ts, c, tz), c.threshold_pct, c.depot)
    return datetime.fromtimestamp(round_ts, tz).date(), plan


def planned_out(p: PlannedBin) -> PlannedBinOut:
    return PlannedBinOut(device=p.device, site=p.site, stream=p.stream, distance_km=p.distance_km,
                         fill_at_round_pct=p.fill_pct, at_next_round_pct=p.at_next_round_pct,
                         reaches_threshold=iso(p.reaches_threshold))


def plan_rows(plan: RoundPlanOut) -> list[list[str]]:
    rows = [ROUND_COLUMNS]
    for action, items in (("collect", plan.collect), ("wait", plan.wait), ("unknown", plan.unknown)):
        for n, p in enumerate(items, 1):
            rows.append([str(n) if action == "collect" else "", action, p.device, p.site, p.stream,
                         *("" if v is None else str(v) for v in (p.distance_km, p.fill_at_round_pct,
                                                                   p.at_next_round_pct, p.reaches_threshold))])
    return rows


@router.get("/territories/{territory_id}/rounds", response_model=RoundPlanOut,
            responses={200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with `format=csv`."}},
            summary="Collection round of a day: the bins to empty (nearest the depot first) and those that can wait")
def rounds(territory_id: TerritoryId, ctx: Ctx, who: Who, budget: Budget,
           stream: Annotated[str | None, Query(max_length=48, description="Only this waste stream's bins.")] = None,
           day: Annotated[str | None, Query(max_length=10, pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
                                            description="The round's local date, YYYY-MM-DD (default: the next round).")]
           = None, fmt: FormatQuery = "json"):
    reg = ctx.registry
    territory = territory_or_404(reg, who, territory_id)
    if stream is not None and stream not in reg.waste_streams:
        raise invalid_parameter("stream", f"unknown stream {stream!r}; known: {', '.join(sorted(reg.waste_streams))}")
    try:
        wanted = date.fromisoformat(day) if day else None
    except ValueError:
        raise invalid_parameter("day", f"day={day!r} is not a date") from None
    if wanted is not None and not 1970 < wanted.year < 2100:
        raise invalid_parameter("day", "day is outside 1971–2099")
    now = time.time()
    lookback = territory.collection.lookback_days * 86400
    budget.charge(budget.check_cost(period_cost(reg, Scope("territory", (territory_id,)),
                                                Period(int(now) - lookback, int(now)))))
    local_day, plan = territory_plan(reg, ctx.store, territory, stream, wanted, now)
    out = RoundPlanOut(territory=territory_id, stream=stream, day=local_day.isoformat(), round=iso(plan.round_ts),
                       next_round=iso(plan.next_round_ts), threshold_pct=plan.threshold_pct,
                       depot=territory.collection.depot, collect=[planned_out(p) for p in plan.collect],
                       wait=[planned_out(p) for p in plan.wait], unknown=[planned_out(p) for p in plan.unknown])
    if fmt == "csv":
        return csv_response(plan_rows(out), f"{territory_id}-round-{out.day}.csv")
    return out
