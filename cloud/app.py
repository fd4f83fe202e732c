"""The indicator API (FastAPI): territories, sites, devices and their indicators.

Everything the handlers need arrives by dependency injection (`Context`, `Principal`),
so tests and `boucle up` build the app with their own registry, store and keys.
Errors are RFC 9457 problem details.
"""

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from boucle.registry import ApiKey, Registry, RegistryFile
from boucle.settings import ApiSettings
from boucle.storage import Store, open_store
from cloud.indicators import Period, Scope, compute_indicators
from cloud.models import DeviceOut, IndicatorOut, IndicatorSet, PeriodOut, Problem, SiteOut, TerritoryOut
from cloud.security import ANONYMOUS_ADMIN, Principal, authenticate

DEFAULT_DAYS = 30
PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}


@dataclass
class Context:
    """What the API serves from: settings, the registry file, the store, extra keys."""

    settings: ApiSettings
    registry_file: RegistryFile
    store: Store
    extra_keys: list[ApiKey] = field(default_factory=list)

    @property
    def registry(self) -> Registry:
        return self.registry_file.current()


class ApiProblem(Exception):
    def __init__(self, status: int, title: str, detail: str | None = None):
        self.status, self.title, self.detail = status, title, detail


def problem_response(status: int, title: str, detail: str | None, instance: str) -> JSONResponse:
    body = Problem(title=title, status=status, detail=detail, instance=instance)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status,
                        media_type="application/problem+json")


def get_context(request: Request) -> Context:
    return request.app.state.context


def get_principal(request: Request, ctx: Annotated[Context, Depends(get_context)]) -> Principal:
    if not ctx.settings.require_keys:
        return ANONYMOUS_ADMIN
    presented = request.headers.get("x-api-key")
    auth = request.headers.get("authorization", "")
    if not presented and auth.lower().startswith("bearer "):
        presented = auth[7:].strip()
    if not presented:
        raise ApiProblem(401, "API key required", "send it in the X-API-Key header")
    principal = authenticate(presented, [*ctx.registry.api_keys, *ctx.extra_keys])
    if principal is None:
        raise ApiProblem(401, "Unknown API key", "check the key, or create one with `boucle key`")
    return principal


def parse_instant(name: str, text: str) -> int:
    """An ISO 8601 date or date-time (UTC unless an offset is given) or Unix seconds."""
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiProblem(422, f"Invalid query parameter '{name}'",
                         f"{name}={text!r} is not an ISO 8601 date/time or Unix seconds "
                         "(e.g. 2026-11-01 or 2026-11-01T00:00:00Z)") from None
    return int((dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp())


def get_period(
    start: Annotated[str | None, Query(alias="from", description="Start (inclusive): ISO 8601 or Unix seconds. Default: 30 days before `to`.")] = None,
    end: Annotated[str | None, Query(alias="to", description="End (exclusive): ISO 8601 or Unix seconds. Default: now.")] = None,
) -> Period:
    t1 = parse_instant("to", end) if end else int(time.time())
    t0 = parse_instant("from", start) if start else t1 - DEFAULT_DAYS * 86400
    if t0 >= t1:
        raise ApiProblem(422, "Invalid query parameter 'from'", "'from' must be before 'to'")
    if t1 - t0 > 20 * 366 * 86400:
        raise ApiProblem(422, "Invalid query parameter 'from'", "a period is at most 20 years")
    return Period(t0, t1)


Ctx = Annotated[Context, Depends(get_context)]
Who = Annotated[Principal, Depends(get_principal)]
When = Annotated[Period, Depends(get_period)]
Ids = Annotated[str | None, Query(description="Comma-separated indicator ids (default: all).",
                                  pattern=r"^[a-z_.,]+$", max_length=2000)]


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def period_out(period: Period) -> PeriodOut:
    return PeriodOut(**{"from": iso(period.start), "to": iso(period.end)})


def indicator_out(value) -> IndicatorOut:
    return IndicatorOut(id=value.id, value=value.value, unit=value.unit, period=period_out(value.period),
                        formula=value.formula, coverage=value.coverage, reference=value.reference,
                        standing=value.standing, breakdown=value.breakdown)


def create_app(settings: ApiSettings, *, registry_file: RegistryFile | None = None, store: Store | None = None,
               extra_keys: list[ApiKey] | None = None) -> FastAPI:
    """Build the API around a registry file and a store."""
    app = FastAPI(
        title="Boucle API",
        version="1",
        description="Territorial energy and waste indicators from IoT sensors, each with its data coverage. "
                    "Send your API key in the `X-API-Key` header.",
        responses={401: PROBLEM, 404: PROBLEM, 422: PROBLEM},
    )
    app.state.context = Context(settings, registry_file or RegistryFile(settings.registry),
                                store or open_store(settings.store_url), list(extra_keys or []))

    @app.exception_handler(ApiProblem)
    async def _problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0]
        name = str(err["loc"][-1]) if err.get("loc") else "request"
        return problem_response(422, f"Invalid parameter '{name}'", err.get("msg"), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(exc.status_code, str(exc.detail), None, request.url.path)

    def territory_or_404(ctx: Context, who: Principal, territory_id: str):
        territory = ctx.registry.territory(territory_id)
        if territory is None or not who.sees_territory(territory_id):
            raise ApiProblem(404, "Territory not found", f"no territory {territory_id!r} for this key")
        return territory

    def site_or_404(ctx: Context, who: Principal, site_id: str):
        site = ctx.registry.site(site_id)
        if site is None or not who.sees_site(ctx.registry, site_id):
            raise ApiProblem(404, "Site not found", f"no site {site_id!r} for this key")
        return site

    @app.get("/healthz", include_in_schema=False)
    def healthz(ctx: Ctx) -> dict:
        ctx.store.data_version()
        return {"ok": True}

    @app.get("/v1/territories", response_model=list[TerritoryOut], summary="Territories this key may see")
    def territories(ctx: Ctx, who: Who) -> list[TerritoryOut]:
        reg = ctx.registry
        return [
            TerritoryOut(id=t.id, name=t.name, kind=t.kind, population=t.population, centroid=t.centroid,
                         sites=len(reg.sites_of(t.id)), devices=len(reg.devices_of(t.id)))
            for t in reg.territories if who.sees_territory(t.id)
        ]

    @app.get("/v1/territories/{territory_id}", response_model=TerritoryOut, summary="One territory")
    def territory(territory_id: str, ctx: Ctx, who: Who) -> TerritoryOut:
        t = territory_or_404(ctx, who, territory_id)
        reg = ctx.registry
        return TerritoryOut(id=t.id, name=t.name, kind=t.kind, population=t.population, centroid=t.centroid,
                            sites=len(reg.sites_of(t.id)), devices=len(reg.devices_of(t.id)))

    def site_out(reg: Registry, s) -> SiteOut:
        return SiteOut(id=s.id, territory=s.territory, name=s.name, kind=s.kind, location=s.location,
                       floor_area_m2=s.floor_area_m2, employees=s.employees, activity_code=s.activity_code,
                       opening_hours=s.opening_hours, devices=len(reg.devices_of_site(s.id)))

    @app.get("/v1/sites", response_model=list[SiteOut], summary="Sites this key may see")
    def sites(ctx: Ctx, who: Who, territory: Annotated[str | None, Query(description="Only this territory's sites.")] = None) -> list[SiteOut]:
        reg = ctx.registry
        return [site_out(reg, s) for s in reg.sites
                if who.sees_site(reg, s.id) and (territory is None or s.territory == territory)]

    @app.get("/v1/sites/{site_id}", response_model=SiteOut, summary="One site")
    def site(site_id: str, ctx: Ctx, who: Who) -> SiteOut:
        return site_out(ctx.registry, site_or_404(ctx, who, site_id))

    @app.get("/v1/devices", response_model=list[DeviceOut], summary="Devices, with last seen, online, health")
    def devices(ctx: Ctx, who: Who, site: Annotated[str | None, Query(description="Only this site's devices.")] = None) -> list[DeviceOut]:
        reg = ctx.registry
        chosen = [d for d in reg.devices if who.sees_site(reg, d.site) and (site is None or d.site == site)]
        ids = [d.id for d in chosen]
        seen = ctx.store.last_seen(ids)
        states = ctx.store.device_states(ids)
        now = time.time()
        out = []
        for d in chosen:
            ts, received = seen.get(d.id, (None, None))
            health = states.get(d.id, {}).get("health")
            out.append(DeviceOut(
                id=d.id, site=d.site, kind=d.kind, channel=d.channel, stream=d.stream, last_seen=iso(ts),
                online=received is not None and now - received < ctx.settings.online_after_s,
                health=health.doc if health else None,
                buffer_depth=health.doc.get("buffer_depth") if health else None))
        return out

    def indicator_set(ctx: Context, scope: Scope, period: Period, ids: str | None) -> IndicatorSet:
        wanted = [i for i in ids.split(",") if i] if ids else None
        values = compute_indicators(ctx.store, ctx.registry, scope, period, wanted)
        return IndicatorSet(scope={"kind": scope.kind, "ids": list(scope.ids)}, period=period_out(period),
                            indicators=[indicator_out(v) for v in values])

    @app.get("/v1/territories/{territory_id}/indicators", response_model=IndicatorSet,
             summary="Indicators of a territory over a period (default: the last 30 days)")
    def territory_indicators(territory_id: str, ctx: Ctx, who: Who, period: When, ids: Ids = None) -> IndicatorSet:
        territory_or_404(ctx, who, territory_id)
        return indicator_set(ctx, Scope("territory", (territory_id,)), period, ids)

    @app.get("/v1/sites/{site_id}/indicators", response_model=IndicatorSet,
             summary="Indicators of a site over a period (default: the last 30 days)")
    def site_indicators(site_id: str, ctx: Ctx, who: Who, period: When, ids: Ids = None) -> IndicatorSet:
        site_or_404(ctx, who, site_id)
        return indicator_set(ctx, Scope("site", (site_id,)), period, ids)

    return app
