"""What every handler gets by dependency injection: the service context, the caller and
its budget (cloud.budget).

`Principal` decides visibility (cloud.security); anything outside a key's scope is
answered 404 exactly as if it did not exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from boucle.registry import ApiKey, Registry, RegistryFile, Site, Territory
from boucle.settings import ApiSettings
from boucle.storage import Store
from cloud.budget import Limits, RequestBudget
from cloud.cache import ResultCache
from cloud.indicators import References
from cloud.problems import ApiProblem
from cloud.security import ANONYMOUS_ADMIN, Principal, authenticate, presented_key


@dataclass
class Context:
    """What the API serves from: settings, the registry file, the store, extra keys."""

    settings: ApiSettings
    registry_file: RegistryFile
    store: Store
    extra_keys: list[ApiKey] = field(default_factory=list)
    references: References | None = None
    cache: ResultCache = field(default_factory=lambda: ResultCache(0))

    @property
    def registry(self) -> Registry:
        return self.registry_file.current()

    @property
    def limits(self) -> Limits:
        s = self.settings
        return Limits(s.max_request_cost, s.cost_per_token, s.request_budget_s)


def get_context(request: Request) -> Context:
    return request.app.state.context


# Declared for the OpenAPI (the docs' "Authorize" button): the key itself is read once, by
# the admission middleware, with presented_key.
API_KEY_HEADER = APIKeyHeader(name="X-API-Key", scheme_name="ApiKey", auto_error=False,
                              description="An API key (`boucle key` makes one; `boucle up` prints one).")
BEARER = HTTPBearer(scheme_name="Bearer", auto_error=False,
                    description="The same API key as `Authorization: Bearer <key>`.")


def identify(ctx: Context, headers: Mapping[str, str]) -> Principal:
    """The caller of a request (headers with lower-case names); 401 without a known key."""
    if not ctx.settings.require_keys:
        return ANONYMOUS_ADMIN
    presented = presented_key(headers)
    if not presented:
        raise ApiProblem(401, "API key required", "send it in the X-API-Key header",
                         {"WWW-Authenticate": "Bearer"})
    principal = authenticate(presented, [*ctx.registry.api_keys, *ctx.extra_keys])
    if principal is None:
        raise ApiProblem(401, "Unknown API key", "check the key, or create one with `boucle key`",
                         {"WWW-Authenticate": "Bearer"})
    return principal


def get_principal(request: Request, ctx: Annotated[Context, Depends(get_context)],
                  _key: Annotated[str | None, Security(API_KEY_HEADER)] = None,
                  _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None) -> Principal:
    """The caller, as the admission middleware identified it (cloud.admission)."""
    principal = getattr(request.state, "principal", None)
    return principal or identify(ctx, {k.lower(): v for k, v in request.headers.items()})


def get_budget(request: Request, ctx: Annotated[Context, Depends(get_context)]) -> RequestBudget:
    """This request's allowance (cloud.budget), as admission made it; unmetered outside /v1."""
    budget = getattr(request.state, "budget", None)
    return budget or RequestBudget("unmetered", ctx.limits)


Ctx = Annotated[Context, Depends(get_context)]
Who = Annotated[Principal, Depends(get_principal)]
Budget = Annotated[RequestBudget, Depends(get_budget)]


def territory_or_404(registry: Registry, who: Principal, territory_id: str) -> Territory:
    territory = registry.territory(territory_id)
    if territory is None or not who.sees_territory(territory_id):
        raise ApiProblem(404, "Territory not found", f"no territory {territory_id!r} for this key")
    return territory


def site_or_404(registry: Registry, who: Principal, site_id: str) -> Site:
    site = registry.site(site_id)
    if site is None or not who.sees_site(registry, site_id):
        raise ApiProblem(404, "Site not found", f"no site {site_id!r} for this key")
    return site
