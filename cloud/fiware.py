"""FIWARE Smart Data Models as NGSI-LD entities: KeyPerformanceIndicator here, and each
kind's own (WasteContainer, WaterConsumptionObserved) in cloud/fiware_entities/<kind>.py.

Normalized form (`{"type": "Property", "value": ...}`) by default, or keyValues (plain
values), as NGSI-LD brokers exchange them. Pure functions over API values.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from cloud.models import IndicatorOut

KPI_CONTEXT = "https://raw.githubusercontent.com/smart-data-models/dataModel.KeyPerformanceIndicator/master/context.jsonld"
CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
MEDIA_TYPE = "application/ld+json"

# FIWARE currentStanding: veryGood | good | fair | bad | veryBad
STANDING = {"better": "good", "between": "fair", "worse": "bad"}


def _prop(value: Any, **extra: Any) -> dict:
    return {"type": "Property", "value": value, **extra}


@cache
def context() -> list[str]:
    """Every entity's @context: the KPI model's, each kind's model's (KINDS order), the core."""
    from cloud.fiware_entities import entity_kinds

    return [KPI_CONTEXT, *(m.CONTEXT for m in entity_kinds().values()), CORE_CONTEXT]


def ngsi_entity(entity: dict, key_values: bool) -> dict:
    """`entity` (id, type, then properties; None left out) in NGSI-LD normalized form or as
    keyValues: `location` a GeoProperty, `ref*` Relationships."""
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
    out["@context"] = context()
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
    return ngsi_entity(entity, key_values)
