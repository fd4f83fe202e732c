"""Typed boundaries of the API: response models (pydantic), with OpenAPI examples."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PeriodOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    start: str = Field(alias="from", description="Start, ISO 8601 UTC (inclusive).")
    end: str = Field(alias="to", description="End, ISO 8601 UTC (exclusive).")


class IndicatorOut(BaseModel):
    """One indicator value, with the data coverage it rests on."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "energy.consumed", "value": 1234.5, "unit": "kWh",
        "period": {"from": "2026-10-27T00:00:00Z", "to": "2026-11-26T00:00:00Z"},
        "formula": "Σ counter deltas of grid_import meters (reset-aware)", "coverage": 0.97,
    }]})

    id: str
    value: float | None
    unit: str
    period: PeriodOut
    formula: str
    coverage: float = Field(ge=0, le=1, description="Share of expected readings actually received.")
    reference: dict[str, Any] | None = None
    standing: str | None = Field(default=None, description="better | between | worse, against the reference.")
    breakdown: dict[str, Any] | None = None


class IndicatorSet(BaseModel):
    scope: dict[str, Any]
    period: PeriodOut
    indicators: list[IndicatorOut]


class TerritoryOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "ecully", "name": "Écully", "kind": "commune", "population": 18512,
        "centroid": [45.7745, 4.7778], "sites": 5, "devices": 14}]})

    id: str
    name: str
    kind: str
    population: int
    centroid: tuple[float, float]
    sites: int
    devices: int


class SiteOut(BaseModel):
    id: str
    territory: str
    name: str
    kind: str
    location: tuple[float, float]
    floor_area_m2: float | None
    employees: int | None
    activity_code: str | None
    opening_hours: str
    devices: int


class DeviceOut(BaseModel):
    id: str
    site: str
    kind: str
    channel: str | None
    stream: str | None
    last_seen: str | None = Field(description="Event time of the newest reading, ISO 8601 UTC.")
    online: bool
    health: dict[str, Any] | None
    buffer_depth: int | None


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
