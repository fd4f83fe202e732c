"""Consent endpoints: a site's owner decides what its territory sees of the site
(boucle.consent, docs/ledger.md). Every decision is kept with its time and author."""

from __future__ import annotations

import time

from fastapi import APIRouter

from boucle.consent import Consent, current
from cloud.access import Ctx, Who, site_or_404
from cloud.models import ConsentIn, ConsentOut
from cloud.params import SiteId
from cloud.problems import ApiProblem
from cloud.timefmt import iso

router = APIRouter(prefix="/v1", tags=["consent"])


def _out(site: str, history: list[Consent]) -> ConsentOut:
    now = current(history, site)
    return ConsentOut(site=site, at=iso(now.at) if now else None, author=now.author if now else None,
                      shares=now.shares if now else "indicators", resolution_s=now.resolution_s if now else 0,
                      history=[{"at": iso(c.at), "author": c.author, "shares": c.shares,
                                "resolution_s": c.resolution_s} for c in history if c.site == site])


@router.get("/sites/{site_id}/consent", response_model=ConsentOut,
            summary="What the site shares with its territory, and every decision before")
def site_consent(site_id: SiteId, ctx: Ctx, who: Who) -> ConsentOut:
    site_or_404(ctx.registry, who, site_id)
    return _out(site_id, ctx.store.consents())


@router.put("/sites/{site_id}/consent", response_model=ConsentOut,
            summary="Set what the site shares with its territory (the site's own key only)")
def set_site_consent(site_id: SiteId, body: ConsentIn, ctx: Ctx, who: Who) -> ConsentOut:
    site_or_404(ctx.registry, who, site_id)
    if site_id not in who.sites:
        raise ApiProblem(403, "Site key required", f"only a key of site {site_id!r} (its owner's) may set its consent")
    if body.shares == "indicators" and body.resolution_s:
        raise ApiProblem(422, "Invalid consent", "resolution_s goes with shares='readings' only")
    try:
        decision = Consent(site_id, time.time(), who.key_id, body.shares, body.resolution_s)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ApiProblem(422, "Invalid consent", str(exc)) from None
    ctx.store.append_consent(decision)
    return _out(site_id, ctx.store.consents())
