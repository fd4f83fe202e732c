"""What one formula returns before it is dressed as an IndicatorValue."""

from __future__ import annotations

from dataclasses import dataclass, field

from boucle.registry import Device


@dataclass
class Outcome:
    value: float | None
    formula: str
    devices: list[Device]
    """The devices the value is built on: its coverage is theirs."""
    breakdown: dict | None = None
    caveats: list[str] = field(default_factory=list)
    reference: dict | None = None
    unit: str | None = None
    """Overrides the catalogue unit (energy.intensity: per inhabitant or per m²)."""
