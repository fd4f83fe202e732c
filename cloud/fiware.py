"""FIWARE Smart Data Models as NGSI-LD entities: KeyPerformanceIndicator, WasteContainer and
WaterConsumptionObserved (dataModel.WaterConsumption).

Normalized form (`{"type": "Property", "value": ...}`) by default, or keyValues (plain
values), as NGSI-LD brokers exchange them. Pure functions over API values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cloud.models import IndicatorOut

CONTEXT = [
    "https://raw.githubusercontent.com/smart-data-models/dataModel.KeyPerformanceIndicator/master/context.jsonld",
    "https://raw.githubusercontent.com/smart-data-models/dataModel.WasteManagement/master/context.jsonld",
    "https://raw.githubusercontent.com/smart-data-models/dataModel.WaterConsumption/master/context.jsonld",
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
]
MEDIA_TYPE = "application/ld+json"

# FIWARE currentStanding: veryGood | good | fair | bad | veryBad
STANDING = {"better": "good", "between": "fair", "worse": "bad"}

# FIWARE storedWasteKind: organic, inorganic, glass, oil, plastic, metal, paper, batteries,
# electronics, hazardous, other
WASTE_KIND = {
    "biowaste": ["organic"], "glass": ["glass"], "paper": ["paper"], "metal": ["metal"],
    "plastic_offcuts": ["plastic"], "packaging": ["plastic", "metal", "paper"],
    "residual": ["other"], "wood": ["other"], "textile": ["other"], "bulky": ["other"],
}


def _prop(value: Any, **extra: Any) -> dict:
    return {"type": "Property", "value": value, **extra}


def _entity(entity: dict, key_values: bool) -> dict:
    out = {"id": entity.pop("id"), "type": entity.pop("type")}
    for name, value in entity.items():
        if value is None:
            continue
        if name == "location":
            out[name] = value if key_values else {"type": "GeoProperty", "value": value}
        elif name.startswith("ref"):
            out[name] = value if key_values else {"type": "Relationship", "object": value}
        else:
            out[name] = value if key_values else _prop(value)
    out["@context"] = CONTEXT
    return out


def point(lat_lon: tuple[float, float]) -> dict:
    """GeoJSON Point (longitude first) from a registry [latitude, longitude]."""
    return {"type": "Point", "coordinates": [lat_lon[1], lat_lon[0]]}


def key_performance_indicator(value: IndicatorOut, scope_kind: str, scope_id: str, area_name: str,
                              location: tuple[float, float], key_values: bool = False) -> dict:
    """One indicator value as a KeyPerformanceIndicator entity."""
    entity = {
        "id": f"urn:ngsi-ld:KeyPerformanceIndicator:boucle:{scope_kind}:{scope_id}:{value.id}",
        "type": "KeyPerformanceIndicator",
        "name": value.name or value.id,
        "description": f"{value.name or value.id} ({value.unit}), data coverage {value.coverage:.0%}",
        "category": ["quantitative"],
        "kpiValue": value.value,
        "calculationFormula": value.formula,
        "calculationMethod": "automatic",
        "calculationPeriod": {"from": value.period.start, "to": value.period.end},
        "areaServed": area_name,
        "currentStanding": STANDING.get(value.standing or ""),
        "location": point(location),
        "unit": value.unit,
        "coverage": value.coverage,
        "reference": value.reference,
    }
    return _entity(entity, key_values)


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
    if state.fill_pct is not None:
        level = state.fill_pct / 100
    elif state.weight_g is not None and state.capacity_kg:
        level = state.weight_g / 1000 / state.capacity_kg
    else:
        return None
    return round(min(1.0, max(0.0, level)), 4)


def waste_container(state: ContainerState, key_values: bool = False) -> dict:
    """A bin as a WasteContainer entity."""
    entity = {
        "id": f"urn:ngsi-ld:WasteContainer:boucle:{state.device_id}",
        "type": "WasteContainer",
        "fillingLevel": filling_level(state),
        # an empty bin's load cell reads a few grams either side of zero
        "cargoWeight": None if state.weight_g is None else max(0.0, round(state.weight_g / 1000, 3)),
        "storedWasteKind": WASTE_KIND.get(state.stream or "", ["other"]),
        "wasteStream": state.stream,
        "dateLastEmptying": state.last_emptying,
        "dateObserved": state.observed,
        "location": point(state.location),
        "refSite": f"urn:ngsi-ld:Site:boucle:{state.site_id}",
    }
    if state.capacity_kg is not None or state.capacity_l is not None:
        entity["capacity"] = {"kg": state.capacity_kg, "l": state.capacity_l}
    return _entity(entity, key_values)


@dataclass(frozen=True)
class WaterMeterState:
    """What is known of a water meter: registry facts, its newest counter, the flows of the
    period and whether its site's night flow persists (water.leak_suspected)."""

    device_id: str
    site_id: str
    location: tuple[float, float]
    water_l: int | None
    observed: str | None
    min_flow_lph: float | None
    max_flow_lph: float | None
    persistence: str
    """alarmFlowPersistence: "Nothing to report", "In progress persistence" or "Past Persistence
    during the period"."""


def water_consumption_observed(state: WaterMeterState, key_values: bool = False) -> dict:
    """A water meter as a WaterConsumptionObserved entity. waterConsumption is the device's
    own cumulative counter in m³ (it starts at 0 when the board does, not at the meter's dial;
    a number with the litres as decimals where the model says integer)."""
    entity = {
        "id": f"urn:ngsi-ld:WaterConsumptionObserved:boucle:{state.device_id}",
        "type": "WaterConsumptionObserved",
        "waterConsumption": None if state.water_l is None else state.water_l / 1000,
        "minFlow": state.min_flow_lph,
        "maxFlow": state.max_flow_lph,
        "alarmFlowPersistence": state.persistence,
        "alarmInProgress": int(state.persistence == "In progress persistence"),
        "dateObserved": state.observed,
        "location": point(state.location),
        "refDevice": f"urn:ngsi-ld:Device:boucle:{state.device_id}",
        "refSite": f"urn:ngsi-ld:Site:boucle:{state.site_id}",
    }
    return _entity(entity, key_values)
