"""Each kind's FIWARE Smart Data Model entities: one module per kind that has a model, named
by its server descriptor (`FIWARE` of boucle/kinds/<kind>.py); cloud/fiware_routes.py serves
each one's at /v1/fiware/{territories,sites}/{id}/<PATH>.

A module has
  CONTEXT     its Smart Data Model's JSON-LD context (every entity carries all of them)
  PATH        the last part of its routes' paths ("water-consumption")
  NAME        the routes' function names: territory_<NAME>, site_<NAME> (their OpenAPI ids)
  SUMMARY     the routes' summary after "A territory's " / "A site's "
  states(ctx, reg, scope, period) -> list   what is known of each device of the scope
  entity(state, key_values) -> dict         one state as an NGSI-LD entity (cloud.fiware.ngsi_entity)
"""

from __future__ import annotations

from types import ModuleType

from boucle import kinds
from cloud.access import Context


def entity_kinds() -> dict[str, ModuleType]:
    """The FIWARE module of each kind that has one, in KINDS order."""
    return kinds.components("FIWARE")


def newest(ctx: Context, devices, fields: list[str], kind: str | None = None) -> tuple[dict, dict[str, dict]]:
    """The devices' last_seen, and the `fields` of each one's newest reading ({} if none;
    with `kind`, read only for the devices of that kind)."""
    seen = ctx.store.last_seen([d.id for d in devices])
    found: dict[str, dict] = {}
    for d in devices:
        if kind is not None and d.kind != kind:
            continue
        rows = ctx.store.readings(d.id, seen[d.id][0], seen[d.id][0] + 1, fields) if d.id in seen else []
        found[d.id] = rows[-1].values if rows else {}
    return seen, found
