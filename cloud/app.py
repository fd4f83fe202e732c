"""The indicator API (FastAPI) and its dashboard page.

Everything the handlers need arrives by dependency injection (`Context`, `Principal`),
so tests and `boucle up` build the app with their own registry, store and keys.
Errors are RFC 9457 problem details; requests are size-limited, admitted per key (rate
limit, turns: cloud.admission) and bounded in cost and time (cloud.budget); answers are
cached per (query, data version).
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from boucle.registry import ApiKey, RegistryFile
from boucle.settings import ApiSettings
from boucle.storage import Store, open_store
from cloud import (
    alert_routes,
    consent_routes,
    dashboard,
    device_health,
    exchange_routes,
    fiware_routes,
    indicator_routes,
    ledger_routes,
    ranking,
    registry_routes,
    round_routes,
)
from cloud.access import Context, Ctx
from cloud.admission import AdmissionMiddleware, CallerSlots
from cloud.alerts.service import alert_service
from cloud.cache import ResultCache
from cloud.indicators import References, load_references
from cloud.limits import RequestLimitMiddleware
from cloud.models import Problem
from cloud.problems import ApiProblem, install_problem_handlers, store_unavailable
from cloud.ratelimit import TokenBuckets

__all__ = ["ApiProblem", "Context", "create_app"]
PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}

DESCRIPTION = """Territorial energy and waste indicators from IoT sensors, each with its data coverage.

**Keys.** Send your API key in the `X-API-Key` header (or `Authorization: Bearer <key>`).
A territory key sees its territories, their sites and indicators; a site key its own sites;
an admin key everything. Anything outside a key's scope is answered 404.

**Periods.** `from` and `to` take ISO 8601 dates/times (UTC unless an offset is given) or
Unix seconds; the default is the last 30 days.

**Errors** are RFC 9457 problem details (`application/problem+json`). A malformed query
parameter gives 422 naming it; too many requests 429 with `Retry-After`.

**Limits.** A request may ask for at most a fixed amount of work, counted in device-steps
(devices in scope × series steps, or × 30-day months for indicator sets): more is 422
`Request too costly`, saying how to ask for less. A computed answer takes tokens from the
key's rate limit by its cost (a cached one does not); a key has a few requests answered at
once, the others wait their turn; a series or comparison computing for longer than its
time budget (CPU time) stops with 503.

**Formats.** Indicator sets, comparisons and series also come as CSV (`format=csv`);
indicators and bins as FIWARE NGSI-LD entities under `/v1/fiware`.
"""


def cors_origins(text: str) -> list[str]:
    return [o.strip().rstrip("/") for o in text.split(",") if o.strip()]


def create_app(settings: ApiSettings, *, registry_file: RegistryFile | None = None, store: Store | None = None,
               extra_keys: list[ApiKey] | None = None, references: References | None = None) -> FastAPI:
    """Build the API and dashboard around a registry file and a store."""
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if app.state.alerts is not None:
            app.state.alerts.start()  # the alert loop runs while the app is served
        yield
        if app.state.alerts is not None:
            app.state.alerts.stop()

    # fastapi-offline serves Swagger UI from its own package, not a CDN: /docs works offline.
    app = FastAPIOffline(lifespan=lifespan,
        title="Boucle API", version="1", description=DESCRIPTION, docs_url="/docs", redoc_url=None,
        static_url="/docs-assets",
        responses={401: PROBLEM, 404: PROBLEM, 422: PROBLEM, 429: PROBLEM},
        openapi_tags=[
            {"name": "registry", "description": "Territories, sites and devices this key may see."},
            {"name": "indicators", "description": "The indicator catalogue (docs/indicators.md)."},
            {"name": "FIWARE", "description": "NGSI-LD KeyPerformanceIndicator and WasteContainer entities."},
            {"name": "alerts", "description": "Alerts the rules raised, acknowledged and resolved (docs/api.md)."},
            {"name": "rounds", "description": "Collection rounds planned from the bins' fill forecasts."},
            {"name": "exchanges", "description": "Exchanges proposed from symbiosis matches, and their status."},
            {"name": "ledger", "description": "Daily ledger, reading proofs and exports for `boucle verify` "
                                              "(docs/ledger.md)."},
            {"name": "consent", "description": "What a site's owner shares with its territory."},
        ],
    )
    app.state.context = Context(
        settings, registry_file or RegistryFile(settings.registry),
        store or open_store(settings.store_url, token=settings.influx_token,
                            rollup_cache_bytes=settings.rollup_cache_mb * 2**20),
        list(extra_keys or []), references or load_references(), ResultCache(settings.cache_entries))
    app.state.alerts = alert_service(app.state.context)
    install_problem_handlers(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz(ctx: Ctx) -> dict:
        """200 when the store answers; else 503 (a problem document), whatever the store raised."""
        try:
            ctx.store.data_version()
        except Exception as exc:  # noqa: BLE001 - any failure of the store makes the API unhealthy
            raise store_unavailable("/healthz", exc) from None
        return {"ok": True}

    app.include_router(registry_routes.router)
    app.include_router(indicator_routes.router)
    app.include_router(fiware_routes.router)
    app.include_router(alert_routes.router)
    app.include_router(round_routes.router)
    app.include_router(exchange_routes.router)
    app.include_router(ledger_routes.router)
    app.include_router(consent_routes.router)
    app.include_router(ranking.router)
    app.include_router(device_health.router)
    app.include_router(dashboard.router)

    # the last added runs first: CORS, then size limits, then admission (key, rate limit, turns)
    buckets = TokenBuckets(settings.rate_limit_per_s, settings.rate_limit_burst) if settings.rate_limit_per_s > 0 else None
    app.add_middleware(AdmissionMiddleware, context=app.state.context, buckets=buckets,
                       slots=CallerSlots(settings.key_concurrency))
    app.add_middleware(RequestLimitMiddleware, max_target_bytes=settings.max_query_bytes,
                       max_body_bytes=settings.max_body_bytes)
    origins = cors_origins(settings.cors_origins)
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "HEAD", "OPTIONS"],
                           allow_headers=["X-API-Key", "Authorization"], expose_headers=["Retry-After", "X-Cache"],
                           max_age=600)
    return app
