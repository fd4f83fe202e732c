"""Exchanges: a symbiosis match (a site's waste output, another's declared need) turned into
a proposed exchange (donor, receiver, material, kg, pick-up window, distance), recorded in
the alert book, listed, and moved through its statuses (docs/api.md "Exchanges").

A key sees an exchange when it sees its territory (the donor's) or either of its sites.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from boucle.registry import Registry
from cloud.access import Budget, Ctx, Who, site_or_404
from cloud.alert_routes import SCAN, Alerts, listing_scope
from cloud.budget import period_cost
from cloud.indicators import Period, Scope, symbiosis_detail
from cloud.params import get_period, parse_instant
from cloud.problems import ApiProblem, invalid_parameter
from cloud.security import Principal
from cloud.timefmt import iso

router = APIRouter(prefix="/v1", tags=["exchanges"])
ExchangeStatus = Literal["proposed", "accepted", "declined", "cancelled", "done"]
MAX_WINDOW_S = 90 * 86400


class ExchangeIn(BaseModel):
    from_site: str = Field(max_length=48, description="The donor: the site whose waste output it is.")
    to_site: str = Field(max_length=48, description="The receiver: the site that declared the need.")
    material: str = Field(max_length=48, description="The waste stream / material of the match.")
    kg: float | None = Field(default=None, gt=0, le=1_000_000,
                             description="Mass to hand over (default: the match's kg per month).")
    pickup_from: str = Field(max_length=40, description="Pick-up window start (ISO 8601 or Unix seconds).")
    pickup_until: str = Field(max_length=40, description="Pick-up window end, at most 90 days after its start.")
    kind: Literal["gift", "barter", "sale"] = "gift"
    note: str = Field(default="", max_length=500)


class StatusIn(BaseModel):
    status: ExchangeStatus


class ExchangeOut(BaseModel):
    id: int
    territory: str
    from_site: str
    to_site: str
    material: str
    kg: float
    pickup_from: str
    pickup_until: str
    distance_km: float
    kind: str
    note: str
    status: ExchangeStatus
    created: str
    created_by: str
    updated: str
    history: list[dict]


class ExchangeList(BaseModel):
    exchanges: list[ExchangeOut]


ExchangeId = Annotated[int, Path(ge=1, le=2**62, description="An exchange's id.")]


def exchange_out(x: dict) -> ExchangeOut:
    times = {k: iso(x[k]) for k in ("pickup_from", "pickup_until", "created", "updated")}
    history = [{**h, "at": iso(h["at"])} for h in x["history"]]
    return ExchangeOut(**{**x, **times, "history": history})


def sees_exchange(registry: Registry, who: Principal, x: dict) -> bool:
    return (who.sees_territory(x["territory"]) or who.sees_site(registry, x["from_site"])
            or who.sees_site(registry, x["to_site"]))


def exchange_or_404(alerts, registry: Registry, who: Principal, exchange_id: int) -> dict:
    found = alerts.book.exchange(exchange_id)
    if found is None or not sees_exchange(registry, who, found):
        raise ApiProblem(404, "Exchange not found", f"no exchange {exchange_id} for this key")
    return found


@router.post("/exchanges", response_model=ExchangeOut, status_code=201,
             summary="Propose an exchange from a symbiosis match of a period (`from`, `to`: default the last 30 days)")
def propose(body: ExchangeIn, ctx: Ctx, who: Who, alerts: Alerts, budget: Budget,
            period: Annotated[Period, Depends(get_period)]) -> ExchangeOut:
    reg = ctx.registry
    donor = site_or_404(reg, who, body.from_site)  # the donor's side proposes (its officer, or its own key)
    receiver = reg.site(body.to_site)
    if receiver is None:
        raise ApiProblem(404, "Site not found", f"no site {body.to_site!r}")
    start, until = parse_instant("pickup_from", body.pickup_from), parse_instant("pickup_until", body.pickup_until)
    if not start < until <= start + MAX_WINDOW_S:
        raise invalid_parameter("pickup_until", "the pick-up window must end after it starts, within 90 days")
    scope = Scope("territory", (donor.territory,))
    budget.charge(budget.check_cost(period_cost(reg, scope, period)))
    everywhere = receiver.territory != donor.territory
    matches = symbiosis_detail(ctx.store, reg, scope, period, everywhere, ctx.references)
    match = next((m for m in matches if (m["from_site"], m["to_site"], m["material"])
                  == (body.from_site, body.to_site, body.material)), None)
    if match is None:
        raise ApiProblem(422, "No such symbiosis match",
                         f"{body.from_site} → {body.to_site} ({body.material}) is not a symbiosis match of the period: "
                         f"see GET /v1/territories/{donor.territory}/symbiosis")
    kg = body.kg if body.kg is not None else round(float(match["matchable_kg_per_month"]), 1)
    recorded = alerts.book.propose({
        "territory": donor.territory, "from_site": body.from_site, "to_site": body.to_site,
        "material": body.material, "kg": kg, "pickup_from": start, "pickup_until": until,
        "distance_km": float(match["distance_km"]), "kind": body.kind, "note": body.note}, who.key_id, time.time())
    return exchange_out(recorded)


@router.get("/exchanges", response_model=ExchangeList, summary="Exchanges, newest first")
def list_exchanges(ctx: Ctx, who: Who, alerts: Alerts,
                   territory: Annotated[str | None, Query(max_length=48, description="Only this territory's.")] = None,
                   status: Annotated[ExchangeStatus | None, Query(description="Only in this status.")] = None,
                   limit: Annotated[int, Query(ge=1, le=500)] = 100) -> ExchangeList:
    reg = ctx.registry
    scope = listing_scope(reg, who, territory)
    if who.sites and territory is None:
        scope = None  # a site key: its sites' exchanges may be recorded under another territory (the donor's)
    found = [x for x in alerts.book.exchanges(scope, status, SCAN) if sees_exchange(reg, who, x)]
    return ExchangeList(exchanges=[exchange_out(x) for x in found[:limit]])


@router.get("/exchanges/{exchange_id}", response_model=ExchangeOut, summary="One exchange")
def one_exchange(exchange_id: ExchangeId, ctx: Ctx, who: Who, alerts: Alerts) -> ExchangeOut:
    return exchange_out(exchange_or_404(alerts, ctx.registry, who, exchange_id))


@router.post("/exchanges/{exchange_id}/status", response_model=ExchangeOut,
             summary="Move an exchange on: proposed → accepted | declined | cancelled; accepted → done | cancelled")
def set_status(exchange_id: ExchangeId, body: StatusIn, ctx: Ctx, who: Who, alerts: Alerts) -> ExchangeOut:
    exchange_or_404(alerts, ctx.registry, who, exchange_id)
    try:
        return exchange_out(alerts.book.set_exchange_status(exchange_id, body.status, who.key_id, time.time()))
    except ValueError as exc:
        raise ApiProblem(409, "Status change not allowed", str(exc)) from None
