"""The indicator catalogue: id → name, unit and the formula that computes it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cloud.indicators import coverage, energy, waste
from cloud.indicators.context import Context
from cloud.indicators.outcome import Outcome


@dataclass(frozen=True)
class IndicatorSpec:
    id: str
    name: str
    unit: str
    compute: Callable[[Context], Outcome]


_SPECS = [
    IndicatorSpec("energy.consumed", "Energy consumed", "kWh", energy.consumed),
    IndicatorSpec("waste.generated", "Waste generated", "kg", waste.generated),
    IndicatorSpec("data.coverage", "Data coverage", "%", coverage.coverage),
]

CATALOGUE: dict[str, IndicatorSpec] = {s.id: s for s in _SPECS}
