"""Endpoints over the registry and device state: territories, sites, devices."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query

from boucle.registry import Registry, Site, Territory
from cloud.access import Ctx, Who, site_or_404, territory_or_404
from cloud.device_health import health_settings, is_online
from cloud.models import DeviceOut, SiteOut, TerritoryOut, plain
from cloud.params import SiteId, TerritoryId
from cloud.problems import ApiProblem
from cloud.security import Principal
from cloud.timefmt import iso

router = APIRouter(prefix="/v1", tags=["registry"])


def territory_out(reg: Registry, t: Territory) -> TerritoryOut:
    return TerritoryOut(id=t.id, name=t.name, kind=t.kind, population=t.population, centroid=t.centroid,
                        sites=len(reg.sites_of(t.id)), devices=len(reg.devices_of(t.id)))


def site_out(reg: Registry, s: Site) -> SiteOut:
    return SiteOut(id=s.id, territory=s.territory, name=s.name, kind=s.kind, location=s.location,
                   floor_area_m2=s.floor_area_m2, employees=s.employees, activity_code=s.activity_code,
                   opening_hours=s.opening_hours, devices=len(reg.devices_of_site(s.id)))


def filter_territory_or_404(reg: Registry, who: Principal, territory_id: str) -> None:
    """A territory used as a list filter: 404 unless the key sees it or one of its sites."""
    if reg.territory(territory_id) is None or not (
            who.sees_territory(territory_id) or any(who.sees_site(reg, s.id) for s in reg.sites_of(territory_id))):
        raise ApiProblem(404, "Territory not found", f"no territory {territory_id!r} for this key")


@router.get("/territories", response_model=list[TerritoryOut], summary="Territories this key may see")
def territories(ctx: Ctx, who: Who) -> list[TerritoryOut]:
    reg = ctx.registry
    return [territory_out(reg, t) for t in reg.territories if who.sees_territory(t.id)]


@router.get("/territories/{territory_id}", response_model=TerritoryOut, summary="One territory")
def territory(territory_id: TerritoryId, ctx: Ctx, who: Who) -> TerritoryOut:
    reg = ctx.registry
    return territory_out(reg, territory_or_404(reg, who, territory_id))


@router.get("/sites", response_model=list[SiteOut], summary="Sites this key may see")
def sites(ctx: Ctx, who: Who,
          territory: Annotated[str | None, Query(max_length=48, description="Only this territory's sites.")] = None,
          ) -> list[SiteOut]:
    reg = ctx.registry
    if territory is not None:
        filter_territory_or_404(reg, who, territory)
    return [site_out(reg, s) for s in reg.sites
            if who.sees_site(reg, s.id) and (territory is None or s.territory == territory)]


@router.get("/sites/{site_id}", response_model=SiteOut, summary="One site")
def site(site_id: SiteId, ctx: Ctx, who: Who) -> SiteOut:
    reg = ctx.registry
    return site_out(reg, site_or_404(reg, who, site_id))


@router.get("/devices", response_model=list[DeviceOut],
            summary="Devices with last seen, online, health and buffer depth")
def devices(ctx: Ctx, who: Who,
            site: Annotated[str | None, Query(max_length=48, description="Only this site's devices.")] = None,
            territory: Annotated[str | None, Query(max_length=48, description="Only this territory's devices.")] = None,
            ) -> list[DeviceOut]:
    reg = ctx.registry
    if site is not None:
        site_or_404(reg, who, site)
    if territory is not None:
        filter_territory_or_404(reg, who, territory)
    in_territory = {s.id for s in reg.sites_of(territory)} if territory is not None else None
    chosen = [d for d in reg.devices if who.sees_site(reg, d.site)
              and (site is None or d.site == site)
              and (in_territory is None or d.site in in_territory)]
    ids = [d.id for d in chosen]
    seen = ctx.store.last_seen(ids)
    states = ctx.store.device_states(ids)
    now = time.time()
    out = []
    for d in chosen:
        ts, received = seen.get(d.id, (None, None))
        health = states.get(d.id, {}).get("health")
        depth = health.doc.get("buffer_depth") if health else None
        out.append(DeviceOut(
            id=d.id, site=d.site, kind=d.kind, channel=d.channel, stream=d.stream, last_seen=iso(ts),
            online=is_online(d, received, now, ctx.settings.online_after_s, health_settings(reg, d)),
            health=plain(health.doc) if health else None,
            buffer_depth=depth if isinstance(depth, int) and not isinstance(depth, bool) else None))
    return out
