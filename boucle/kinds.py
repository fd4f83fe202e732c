"""Device kinds as the servers read them: the firmware's descriptors (boucle_fw.kinds,
boucle_fw.sensors), one place for the registry, the rollups, the gateway, the indicators
and the simulator to ask what a kind measures and how it is accounted.

A **meter** kind (energy, water) keeps a cumulative integer counter on the device; its
increments accrue per interval in thousandths of the counter's unit (mWh, mL), reset-aware,
a delta above the device's rated rate × Δt rejected. Any other kind (waste) is a **bin**:
deposits and emptyings from its weight or fill series.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from boucle_fw import kinds as _kinds

KINDS: tuple[str, ...] = _kinds.KINDS
DeviceKind = Literal[KINDS]  # type: ignore[valid-type]  # Literal["energy", "waste", "water"]


@dataclass(frozen=True, slots=True)
class Meter:
    """How a meter kind's counter is accounted (boucle_fw.kinds.<kind>.METER)."""

    kind: str
    counter: str
    """Its reading field (energy_wh, water_l)."""
    unit: str
    rated: str
    """The registry device field of its rated rate (rated_power_w, rated_flow_m3_h)."""
    per_rated_hour: float
    """Counter units an hour per unit of the rated field (1 Wh per W, 1000 L per m³/h)."""
    max_per_hour: float
    """Counter units an hour without a rated rate: its rate field's protocol bound."""


def _meter(kind: str) -> Meter | None:
    spec = _kinds.get(kind).METER
    if spec is None:
        return None
    bound = _kinds.field(spec["rate_field"])[4]
    return Meter(kind, spec["counter"], spec["unit"], spec["rated"], spec["per_rated_hour"],
                 bound * spec["per_rate_hour"])


METERS: dict[str, Meter] = {k: m for k in KINDS if (m := _meter(k)) is not None}
"""The meter kinds, by kind."""
COUNTERS: tuple[str, ...] = tuple(m.counter for m in METERS.values())


def meter(kind: str) -> Meter | None:
    """The accounting of a meter kind; None for a bin."""
    return METERS.get(kind)


def rated_per_hour(kind: str, device: object) -> float | None:
    """A device's rated rate in counter units an hour (from its registry field), or None."""
    m = METERS.get(kind)
    rated = getattr(device, m.rated, None) if m is not None else None
    return None if rated is None else rated * m.per_rated_hour
