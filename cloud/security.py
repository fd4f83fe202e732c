"""API keys and what they may see (data sovereignty, DESIGN.md "Registry").

An admin key sees everything; a territory key sees its territories, their sites and
indicators; a site key sees only its own sites. Anything outside a key's scope is
answered 404, exactly as if it did not exist.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from boucle.registry import ApiKey, Registry, hash_key


@dataclass(frozen=True)
class Principal:
    """The caller, as its key allows."""

    key_id: str
    admin: bool
    territories: frozenset[str]
    sites: frozenset[str]

    def sees_territory(self, territory_id: str) -> bool:
        return self.admin or territory_id in self.territories

    def sees_site(self, registry: Registry, site_id: str) -> bool:
        if self.admin or site_id in self.sites:
            return True
        site = registry.site(site_id)
        return site is not None and site.territory in self.territories


ANONYMOUS_ADMIN = Principal("anonymous", True, frozenset(), frozenset())


def new_key() -> str:
    """A fresh API key: 32 random bytes, URL-safe."""
    return "bk_" + secrets.token_urlsafe(32)


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The API key of a request (headers with lower-case names): `X-API-Key`, or
    `Authorization: Bearer <key>`."""
    key = headers.get("x-api-key")
    auth = headers.get("authorization", "")
    if not key and auth.lower().startswith("bearer "):
        key = auth[7:].strip()
    return key or None


def authenticate(presented: str, keys: list[ApiKey]) -> Principal | None:
    """The principal of a presented key, or None. Compares hashes in constant time."""
    digest = hash_key(presented)
    found = None
    for key in keys:
        if hmac.compare_digest(digest, key.sha256):
            found = key
    if found is None:
        return None
    return Principal(found.id, found.admin, frozenset(found.territories), frozenset(found.sites))
