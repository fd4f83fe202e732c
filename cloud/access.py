"""What every handler gets by dependency injection: the service context and the caller.

`Principal` decides visibility (cloud.security); anything outside a key's scope is
answered 404 exactly as if it did not exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from boucle.registry import ApiKey, Registry, RegistryFile, Site, Territory
from boucle.settings import ApiSettings
from boucle.storage import Store
from cloud.cache import ResultCache
from cloud.indicators import References
from cloud.problems import ApiProblem
from cloud.ratelimit import presented_key
from cloud.security import ANONYMOUS_ADMIN, Principal, authenticate


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


def get_context(request: Request) -> Context:
    return request.app.state.context


def get_principal(request: Request, ctx: Annotated[Context, Depends(get_context)]) -> Principal:
    """The caller, from `X-API-Key` or `Authorization: Bearer`; 401 without a known key."""
    if not ctx.settings.require_keys:
        return ANONYMOUS_ADMIN
    presented = presented_key({k.lower(): v for k, v in request.headers.items()})
    if not presented:
        raise ApiProblem(401, "API key required", "send it in the X-API-Key header",
                         {"WWW-Authenticate": "Bearer"})
    principal = authenticate(presented, [*ctx.registry.api_keys, *ctx.extra_keys])
    if principal is None:
        raise ApiProblem(401, "Unknown API key", "check the key, or create one with `boucle key`",
                         {"WWW-Authenticate": "Bearer"})
    return principal


Ctx = Annotated[Context, Depends(get_context)]
Who = Annotated[Principal, Depends(get_principal)]


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
