"""FIWARE entities of the throwaway `gas` kind: one per meter, from the registry alone."""

from cloud.fiware import ngsi_entity, point

CONTEXT = "https://example.org/boucle-test/gas/context.jsonld"
PATH = "gas-meters"
NAME = "gas"
SUMMARY = "gas meters as test entities"


def states(ctx, reg, scope, period):
    sites = set(scope.ids) if scope.kind == "site" else {s.id for s in reg.sites_of(scope.ids[0])}
    return [(d.id, reg.site(d.site).location) for d in reg.devices if d.kind == "gas" and d.site in sites]


def entity(state, key_values=False):
    device_id, location = state
    return ngsi_entity({"id": f"urn:test:GasMeter:{device_id}", "type": "GasMeter", "location": point(location)},
                       key_values)
