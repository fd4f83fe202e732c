"""Bins as FIWARE WasteContainer entities (dataModel.WasteManagement)."""

from __future__ import annotations

from dataclasses import dataclass

from boucle.registry import Registry
from cloud.access import Context
from cloud.bin_forecasts import fill_now_pct, load_kg
from cloud.fiware import ngsi_entity, point
from cloud.fiware_entities import newest
from cloud.indicators import Period, Scope, load_context
from cloud.timefmt import iso

CONTEXT = "https://raw.githubusercontent.com/smart-data-models/dataModel.WasteManagement/master/context.jsonld"
PATH = "waste-containers"
NAME = "containers"
SUMMARY = "bins as FIWARE WasteContainer entities (emptyings searched over the period)"

# FIWARE storedWasteKind: organic, inorganic, glass, oil, plastic, metal, paper, batteries,
# electronics, hazardous, other
WASTE_KIND = {
    "biowaste": ["organic"], "glass": ["glass"], "paper": ["paper"], "metal": ["metal"],
    "plastic_offcuts": ["plastic"], "packaging": ["plastic", "metal", "paper"],
    "residual": ["other"], "wood": ["other"], "textile": ["other"], "bulky": ["other"],
}


@dataclass(frozen=True)
class ContainerState:
    """What is known of a waste container: registry facts plus its newest reading."""

    device_id: str
    site_id: str
    stream: str | None
    location: tuple[float, float]
    capacity_kg: float | None
    capacity_l: float | None
    fill_pct: float | None
    weight_g: float | None
    observed: str | None
    last_emptying: str | None


def filling_level(state: ContainerState) -> float | None:
    """0–1: the fill sensor, else weight ÷ capacity (clamped: an overfull bin reads 1)."""
    level = fill_now_pct(state.fill_pct, state.weight_g, state.capacity_kg)
    return None if level is None else round(level / 100, 4)


def entity(state: ContainerState, key_values: bool = False) -> dict:
    """A bin as a WasteContainer entity."""
    entity = {
        "id": f"urn:ngsi-ld:WasteContainer:boucle:{state.device_id}",
        "type": "WasteContainer",
        "fillingLevel": filling_level(state),
        "cargoWeight": load_kg(state.weight_g),
        "storedWasteKind": WASTE_KIND.get(state.stream or "", ["other"]),
        "wasteStream": state.stream,
        "dateLastEmptying": state.last_emptying,
        "dateObserved": state.observed,
        "location": point(state.location),
        "refSite": f"urn:ngsi-ld:Site:boucle:{state.site_id}",
    }
    if state.capacity_kg is not None or state.capacity_l is not None:
        entity["capacity"] = {"kg": state.capacity_kg, "l": state.capacity_l}
    return ngsi_entity(entity, key_values)


def states(ctx: Context, reg: Registry, scope: Scope, period: Period) -> list[ContainerState]:
    """Each bin of the scope: newest reading, and its last emptying within the period."""
    ictx = load_context(ctx.store, reg, scope, period, ["waste.fill_at_collection"], ctx.references)
    bins = [d for d in ictx.waste_devices() if d.site == reg.device(d.id).site]  # where each is now
    seen, latest_of = newest(ctx, bins, ["fill_pct", "weight_g"])
    out = []
    for d in bins:
        latest = latest_of[d.id]
        emptied = ictx.frame(d).emptied
        site = reg.site(d.site)
        out.append(ContainerState(
            device_id=d.id, site_id=d.site, stream=d.stream, location=site.location,
            capacity_kg=d.capacity_kg, capacity_l=d.capacity_l, fill_pct=latest.get("fill_pct"),
            weight_g=latest.get("weight_g"), observed=iso(seen[d.id][0]) if d.id in seen else None,
            last_emptying=iso(int(emptied[-1, 0])) if emptied.size else None))
    return out
