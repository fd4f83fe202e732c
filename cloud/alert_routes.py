"""Alert endpoints: list, one alert, acknowledge, evaluate now (docs/api.md "Alerts").

A key sees the alerts of its territories, and a site key those of its sites; any other
alert is answered 404 as if it did not exist.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from boucle.registry import Registry
from cloud.access import Budget, Ctx, Who, territory_or_404
from cloud.alerts.service import AlertService
from cloud.budget import period_cost
from cloud.indicators import Period, Scope
from cloud.problems import ApiProblem
from cloud.security import Principal
from cloud.timefmt import iso

router = APIRouter(prefix="/v1", tags=["alerts"])
AlertStatus = Literal["open", "acknowledged", "resolved"]
MAX_LISTED = 500
SCAN = 10_000
"""Rows read to find a key's newest (a site key's are filtered after reading)."""


class AlertOut(BaseModel):
    id: int
    rule: str
    subject: str
    territory: str
    site: str
    severity: str
    status: AlertStatus
    message: str = Field(description="What happened, in English (as when the alert last changed).")
    messages: dict[str, str] = Field(description="The message in each language of the dashboard: {en, fr} "
                                                "(cloud/alerts/texts.py).")
    detail: dict
    opened: str
    updated: str
    acknowledged: str | None = None
    acknowledged_by: str | None = None
    resolved: str | None = None


class AlertList(BaseModel):
    alerts: list[AlertOut]


class Evaluated(BaseModel):
    changed: list[AlertOut]
    """Alerts this evaluation opened or resolved."""


def get_alerts(request: Request) -> AlertService:
    """The process's alert service; 503 where BOUCLE_ALERTS_DB=off (another process keeps the book)."""
    alerts = request.app.state.alerts
    if alerts is None:
        raise ApiProblem(503, "Alerts not kept here",
                         "this API process keeps no alert book (BOUCLE_ALERTS_DB=off): alerts and exchanges are "
                         "served by the one that does (on Kubernetes, through the boucle-api Ingress, "
                         "deploy/kubernetes/README.md)")
    return alerts


Alerts = Annotated[AlertService, Depends(get_alerts)]
AlertId = Annotated[int, Path(ge=1, le=2**62, description="An alert's id.")]


def alert_out(alert: dict) -> AlertOut:
    times = {k: iso(alert[k]) for k in ("opened", "updated", "acknowledged", "resolved")}
    return AlertOut(**{**alert, **times})


def sees_alert(registry: Registry, who: Principal, alert: dict) -> bool:
    return who.sees_territory(alert["territory"]) or who.sees_site(registry, alert["site"])


def visible_territories(registry: Registry, who: Principal) -> list[str] | None:
    """The territories whose alerts a key may read some of (None: all)."""
    if who.admin:
        return None
    return sorted({*who.territories, *(s.territory for s in registry.sites if s.id in who.sites)})


def listing_scope(registry: Registry, who: Principal, territory: str | None) -> list[str] | None:
    """The territories a list asks for: the one named (404 unless the key sees some of it),
    else all the key may read some of (None: all)."""
    scope = visible_territories(registry, who)
    if territory is not None:
        if registry.territory(territory) is None or (scope is not None and territory not in scope):
            raise ApiProblem(404, "Territory not found", f"no territory {territory!r} for this key")
        scope = [territory]
    return scope


def alert_or_404(alerts: AlertService, registry: Registry, who: Principal, alert_id: int) -> dict:
    alert = alerts.book.alert(alert_id)
    if alert is None or not sees_alert(registry, who, alert):
        raise ApiProblem(404, "Alert not found", f"no alert {alert_id} for this key")
    return alert


@router.get("/alerts", response_model=AlertList, summary="Alerts, newest first")
def list_alerts(ctx: Ctx, who: Who, alerts: Alerts,
                territory: Annotated[str | None, Query(max_length=48, description="Only this territory's.")] = None,
                status: Annotated[AlertStatus | None, Query(description="Only alerts in this state.")] = None,
                limit: Annotated[int, Query(ge=1, le=MAX_LISTED, description="At most this many.")] = 100,
                ) -> AlertList:
    reg = ctx.registry
    scope = listing_scope(reg, who, territory)
    found = [a for a in alerts.book.alerts(scope, status, SCAN if scope is not None else limit)
             if sees_alert(reg, who, a)]
    return AlertList(alerts=[alert_out(a) for a in found[:limit]])


@router.get("/alerts/{alert_id}", response_model=AlertOut, summary="One alert")
def one_alert(alert_id: AlertId, ctx: Ctx, who: Who, alerts: Alerts) -> AlertOut:
    return alert_out(alert_or_404(alerts, ctx.registry, who, alert_id))


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertOut,
             summary="Acknowledge an open alert (someone is on it); it resolves by itself when the condition clears")
def acknowledge(alert_id: AlertId, ctx: Ctx, who: Who, alerts: Alerts) -> AlertOut:
    alert_or_404(alerts, ctx.registry, who, alert_id)
    return alert_out(alerts.acknowledge(alert_id, who.key_id))  # type: ignore[arg-type]


@router.post("/alerts/evaluate", response_model=Evaluated,
             summary="Evaluate the alert rules now (of one territory, or of all a territory key sees)")
def evaluate(ctx: Ctx, who: Who, alerts: Alerts, budget: Budget,
             territory: Annotated[str | None, Query(max_length=48, description="Only this territory.")] = None,
             ) -> Evaluated:
    reg = ctx.registry
    if territory is not None:
        territory_or_404(reg, who, territory)
        ids = [territory]
    elif who.admin:
        ids = None
    else:
        ids = sorted(who.territories)
        if not ids:
            raise ApiProblem(403, "Territory key required", "a site key cannot evaluate a territory's rules")
    # the rules read a few weeks of the territories' nights: charged like an indicator set of a month
    now = int(time.time())
    scope = Scope("territories", tuple(ids if ids is not None else (t.id for t in reg.territories)))
    budget.charge(budget.check_cost(period_cost(reg, scope, Period(now - 30 * 86400, now))))
    return Evaluated(changed=[alert_out(a) for a in alerts.evaluate(territories=ids)])
