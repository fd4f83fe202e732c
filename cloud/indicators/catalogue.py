"""The indicator catalogue (docs/indicators.md): id → name, unit and formula."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cloud.indicators import circular, coverage, energy, waste, water
from cloud.indicators.context import Context, Profiles
from cloud.indicators.outcome import Outcome


@dataclass(frozen=True)
class IndicatorSpec:
    id: str
    name: str
    unit: str
    compute: Callable[[Context], Outcome]
    needs_readings: bool = True
    """False when the value stands without readings (data.coverage itself)."""
    profiles: Profiles | None = None
    """The meters whose energy per interval it reads (the rest read totals and events)."""


POWER = energy.grid_meters
BALANCES = energy.balance_meters

_SPECS = [
    IndicatorSpec("energy.consumed", "Energy consumed", "kWh", energy.consumed),
    IndicatorSpec("energy.intensity", "Energy intensity", "kWh/inhabitant/yr", energy.intensity),
    IndicatorSpec("energy.peak_demand", "Peak demand", "kW", energy.peak_demand, profiles=POWER),
    IndicatorSpec("energy.load_factor", "Load factor", "%", energy.load_factor, profiles=POWER),
    IndicatorSpec("energy.off_hours_share", "Out-of-hours share", "%", energy.off_hours_share, profiles=POWER),
    IndicatorSpec("energy.base_load", "Base load", "kW", energy.base_load, profiles=POWER),
    IndicatorSpec("energy.pv_produced", "Local PV production", "kWh", energy.pv_produced),
    IndicatorSpec("energy.self_consumption", "PV self-consumption rate", "%", energy.self_consumption,
                  profiles=BALANCES),
    IndicatorSpec("energy.self_sufficiency", "Self-sufficiency rate", "%", energy.self_sufficiency,
                  profiles=BALANCES),
    IndicatorSpec("energy.pooling_gain", "Collective self-consumption potential", "pp",
                  energy.pooling_gain, profiles=BALANCES),
    IndicatorSpec("energy.ghg", "Greenhouse gas from electricity", "kgCO2e", energy.ghg),
    IndicatorSpec("waste.generated", "Waste generated", "kg", waste.generated),
    IndicatorSpec("waste.per_capita", "Waste per inhabitant", "kg/inhabitant/yr", waste.per_capita),
    IndicatorSpec("waste.residual_per_capita", "Residual waste per inhabitant", "kg/inhabitant/yr",
                  waste.residual_per_capita),
    IndicatorSpec("waste.sorting_rate", "Separate-collection share", "%", waste.sorting_rate),
    IndicatorSpec("waste.recycling_rate", "Recycling rate", "%", waste.recycling_rate),
    IndicatorSpec("waste.landfill_rate", "Landfill rate", "%", waste.landfill_rate),
    IndicatorSpec("waste.fill_at_collection", "Average fill at collection", "%",
                  waste.fill_at_collection),
    IndicatorSpec("waste.overflows", "Overflow rate", "events/1000 container-days", waste.overflows),
    IndicatorSpec("waste.avoidable_collections", "Avoidable collections", "%",
                  waste.avoidable_collections),
    IndicatorSpec("waste.plan_avoidable_collections", "Collections the round plan would have saved", "%",
                  waste.plan_avoidable_collections),
    IndicatorSpec("waste.ghg", "Greenhouse gas from waste treatment", "kgCO2e", waste.ghg),
    IndicatorSpec("water.consumed", "Water consumed", "m³", water.consumed),
    IndicatorSpec("water.per_capita", "Water per inhabitant", "L/inhabitant/day", water.per_capita),
    IndicatorSpec("water.night_flow", "Night flow", "L/h", water.night_flow, profiles=water.water_meters),
    IndicatorSpec("water.leak_suspected", "Suspected leaks", "sites", water.leak_suspected,
                  profiles=water.water_meters),
    IndicatorSpec("circular.symbiosis_matches", "Symbiosis opportunities", "pairs", circular.symbiosis),
    IndicatorSpec("circular.shared_equipment_use", "Use of shared equipment", "%",
                  circular.shared_equipment_use, profiles=circular.fablab_machines),
    IndicatorSpec("data.coverage", "Data coverage", "%", coverage.coverage, needs_readings=False),
]

CATALOGUE: dict[str, IndicatorSpec] = {s.id: s for s in _SPECS}
