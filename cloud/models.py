"""Typed boundaries of the API: response models (pydantic), with OpenAPI examples."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PERIOD_EXAMPLE = {"from": "2026-10-27T00:00:00Z", "to": "2026-11-26T00:00:00Z"}


def plain(value: Any) -> Any:
    """JSON-safe copy: numpy scalars and arrays to Python, NaN and infinities to None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalar or array
        return plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class PeriodOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True, json_schema_extra={"examples": [PERIOD_EXAMPLE]})

    start: str = Field(alias="from", description="Start, ISO 8601 UTC (inclusive).")
    end: str = Field(alias="to", description="End, ISO 8601 UTC (exclusive).")


class LedgerCitation(BaseModel):
    """A UTC day of a territory an indicator was computed from, and its ledger digest."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "territory": "ecully", "day": "2026-11-01", "version": 1,
        "digest": "5d41402abc4b2a76b9719d911017c592ae5ef2f7f3c1a0e5b0a6a1b1c1d1e1f1"}]})

    territory: str
    day: str = Field(description="UTC day, YYYY-MM-DD.")
    version: int | None = Field(description="The day's current ledger version; None while it is not sealed yet.")
    digest: str | None = Field(description="SHA-256 of the entry (hex, docs/ledger.md); None while not sealed.")
    site_roots: dict[str, str] | None = Field(default=None, description="For a site's values: the site's root in "
                                              "that entry (hex), which its own readings recompute.")


class PeriodChange(BaseModel):
    """An indicator against another period (`compare=previous|year`)."""

    compare: str = Field(description="previous (the period of the same length just before) or year (the same "
                                     "dates a year earlier).")
    period: PeriodOut
    value: float | None = Field(description="The indicator over the other period.")
    coverage: float = Field(ge=0, le=1, description="Data coverage of the other period's value (0–1).")
    delta: float | None = Field(description="This period's value minus the other's.")
    delta_pct: float | None = Field(description="delta in % of the other value (None when it is 0).")
    direction: str | None = Field(description="Which way is better: lower | higher (cloud/references.toml).")
    improved: bool | None = Field(description="True when the change goes the better way, False the worse, "
                                              "None when unchanged or unknown.")


class IndicatorOut(BaseModel):
    """One indicator value, with the data coverage it rests on."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "waste.per_capita", "name": "Waste per inhabitant", "value": 462.1,
        "unit": "kg/inhabitant/yr", "period": PERIOD_EXAMPLE,
        "formula": "Σ deposited mass ÷ population, annualised", "coverage": 0.97,
        "reference": {"limit": 573, "target": 480, "source": "ADEME", "year": 2020},
        "standing": "better", "breakdown": {"kg": 703.2, "population": 18512}, "caveats": [],
    }]})

    id: str
    name: str = ""
    value: float | None
    unit: str
    period: PeriodOut
    formula: str
    coverage: float = Field(ge=0, le=1, description="Share of expected readings actually received (0–1).")
    reference: dict[str, Any] | None = None
    standing: str | None = Field(default=None, description="better | between | worse, against the reference.")
    breakdown: dict[str, Any] | None = None
    caveats: list[str] = []
    sources: list[LedgerCitation] = Field(default=[], description="The UTC days of data it was computed from, "
                                          "each with its ledger digest (docs/ledger.md).")
    change: PeriodChange | None = Field(default=None, description="Against another period, with `compare`.")


class IndicatorSet(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "scope": {"kind": "territory", "ids": ["ecully"]}, "period": PERIOD_EXAMPLE,
        "indicators": [IndicatorOut.model_config["json_schema_extra"]["examples"][0]]}]})

    scope: dict[str, Any] = Field(description="kind (site | territory | territories) and ids.")
    period: PeriodOut
    indicators: list[IndicatorOut]
    compared_with: PeriodOut | None = Field(default=None, description="The other period, with `compare`.")


class Comparison(BaseModel):
    """Indicators of several territories side by side, and of all of them together."""

    period: PeriodOut
    territories: list[IndicatorSet]
    combined: IndicatorSet


class SeriesPoint(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    start: str = Field(alias="from")
    end: str = Field(alias="to")
    value: float | None
    coverage: float
    standing: str | None = None


class Series(BaseModel):
    """One indicator per time step."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "scope": {"kind": "territory", "ids": ["ecully"]}, "indicator": "energy.consumed",
        "name": "Energy consumed", "unit": "kWh", "step_s": 3600,
        "period": {"from": "2026-11-01T00:00:00Z", "to": "2026-11-01T02:00:00Z"},
        "points": [{"from": "2026-11-01T00:00:00Z", "to": "2026-11-01T01:00:00Z", "value": 12.5, "coverage": 1.0},
                   {"from": "2026-11-01T01:00:00Z", "to": "2026-11-01T02:00:00Z", "value": 11.9, "coverage": 1.0}],
    }]})

    scope: dict[str, Any]
    indicator: str
    name: str
    unit: str
    step_s: int
    period: PeriodOut
    points: list[SeriesPoint]
    sources: list[LedgerCitation] = []


class LedgerOut(BaseModel):
    """A territory's ledger entries (docs/ledger.md) and what is wrong with its chain."""

    territory: str
    entries: list[dict[str, Any]]
    problems: list[str] = Field(description="Breaks in the whole chain (empty when it holds).")


class ProofOut(BaseModel):
    """That one stored reading belongs to a sealed day: the day's entry and the reading's paths."""

    entry: dict[str, Any]
    proof: dict[str, Any]
    valid: bool = Field(description="Whether the paths lead the reading to the entry's root (checked by the API; "
                                    "check it yourself with boucle.ledger.verify_proof).")
    signature: str = Field("not recorded", description="Whether the gateway checked the reading's signature against "
                           "its device's key: 'signed and checked', 'unsigned' (a device without a key, as the "
                           "registry allowed), or 'not recorded' (an entry sealed before the ledger counted them). "
                           "From the entry's sealed count for the device and day (docs/ledger.md).")
    device_checks: dict[str, Any] | None = Field(None, description="The entry's signature checks of the reading's "
                                                 "device that day: {readings, checked}.")


class ConsentIn(BaseModel):
    """What a site's owner lets its territory see."""

    model_config = ConfigDict(extra="forbid")

    shares: str = Field(pattern="^(indicators|readings)$", description="`indicators` (no readings) or `readings`.")
    resolution_s: int = Field(default=0, description="With `readings`: 0 (as stored), 900, 3600 or 86400.")


class ConsentOut(BaseModel):
    site: str
    at: str | None
    author: str | None
    shares: str
    resolution_s: int
    history: list[dict[str, Any]]


class SymbiosisMatch(BaseModel):
    model_config = ConfigDict(extra="allow")

    from_site: str
    to_site: str
    material: str
    distance_km: float
    supply_kg_per_month: float
    need_kg_per_month: float
    matchable_kg_per_month: float


class Symbiosis(BaseModel):
    """Pairs (waste output of a site, declared material need of another), best first."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "scope": {"kind": "territory", "ids": ["zi-meyzieu"]}, "period": PERIOD_EXAMPLE,
        "matches": [{"from_site": "zim-injection", "to_site": "zim-fablab", "material": "plastic_offcuts",
                     "distance_km": 0.9, "supply_kg_per_month": 310.0, "need_kg_per_month": 40.0,
                     "matchable_kg_per_month": 40.0}],
        "matchable_kg_per_month": 40.0}]})

    scope: dict[str, Any]
    period: PeriodOut
    matches: list[SymbiosisMatch]
    matchable_kg_per_month: float


class Pooling(BaseModel):
    """Collective self-consumption potential: PV surplus shared within the legal perimeter."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "scope": {"kind": "territory", "ids": ["ecully"]}, "period": PERIOD_EXAMPLE,
        "distance_km": 2.0, "shared_kwh": 146.8, "gain_pp": 19.2, "self_sufficiency_pct": 11.5,
        "with_pooling_pct": 30.6, "coverage": 1.0,
        "pairs": [{"from": "ecully-school", "to": "ecully-bakery", "distance_km": 0.63, "kwh": 104.3}],
        "sites": [{"site": "ecully-school", "import_kwh": 51.0, "pv_kwh": 249.7, "self_used_kwh": 48.1,
                   "surplus_kwh": 201.6, "method": "estimated (no export meter)"}]}]})

    scope: dict[str, Any]
    period: PeriodOut
    distance_km: float
    shared_kwh: float
    gain_pp: float | None
    self_sufficiency_pct: float | None
    with_pooling_pct: float | None
    coverage: float
    pairs: list[dict[str, Any]]
    sites: list[dict[str, Any]]


class TerritoryOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "ecully", "name": "Écully", "kind": "commune", "population": 18512,
        "centroid": [45.7745, 4.7778], "sites": 5, "devices": 14}]})

    id: str
    name: str
    kind: str
    population: int
    centroid: list[float] = Field(min_length=2, max_length=2, description="[latitude, longitude]")
    sites: int
    devices: int


class SiteOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "ecully-fablab", "territory": "ecully", "name": "La Fabrique d'Écully (Fablab)", "kind": "fablab",
        "location": [45.7768, 4.7755], "floor_area_m2": 420, "employees": 4, "activity_code": "85.59B",
        "opening_hours": "Tu-Fr 10:00-19:00; Sa 10:00-17:00", "devices": 4}]})

    id: str
    territory: str
    name: str
    kind: str
    location: list[float] = Field(min_length=2, max_length=2, description="[latitude, longitude]")
    floor_area_m2: float | None
    employees: int | None
    activity_code: str | None
    opening_hours: str
    devices: int


class DeviceOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "ecully-fablab-grid", "site": "ecully-fablab", "kind": "energy", "channel": "grid_import",
        "stream": None, "last_seen": "2026-11-26T06:00:00Z", "online": True,
        "health": {"heap_free": 81234, "rssi": -61, "uptime_s": 86400, "buffer_depth": 0}, "buffer_depth": 0}]})

    id: str
    site: str
    kind: str
    channel: str | None
    stream: str | None
    last_seen: str | None = Field(description="Event time of the newest reading, ISO 8601 UTC.")
    online: bool = Field(description="Newest reading received less than BOUCLE_ONLINE_AFTER_S ago (or its "
                                     "territory's device_health.offline_intervals of its interval_s).")
    health: dict[str, Any] | None = Field(description="Latest health message of the device.")
    buffer_depth: int | None = Field(description="Readings waiting in the device's store-and-forward buffer.")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "type": "about:blank", "title": "Territory not found", "status": 404,
        "detail": "no territory 'lyon' for this key", "instance": "/v1/territories/lyon"}]})

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
