"""Device kinds as the servers read them: the firmware's descriptors (boucle_fw.kinds,
boucle_fw.sensors), one place for the registry, the rollups, the gateway, the indicators
and the simulator to ask what a kind measures and how it is accounted.

Each kind also has a server side, `boucle.kinds.<kind>` (`server(kind)`), for what does
not go on the board: its registry device keys (`DEVICE_KEYS`) and their checks
(`check()`), the workshop's options (`boucle flash` from the keys, `boucle calibrate` from
`CALIBRATE_OPTIONS`), and the modules of the apps that model it (`SIMULATOR`: the
simulator's physical model; `FIWARE`: its NGSI-LD entities), named, not imported: this
package does not import the apps built on it.

A **meter** kind (energy, water) keeps a cumulative integer counter on the device; its
increments accrue per interval in thousandths of the counter's unit (mWh, mL), reset-aware,
a delta above the device's rated rate × Δt rejected. Any other kind (waste) is a **bin**:
deposits and emptyings from its weight or fill series.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

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


def server(kind: str) -> ModuleType:
    """The server side of a kind, boucle.kinds.<kind>; KeyError for an unknown kind."""
    if kind not in KINDS:
        raise KeyError(kind)
    return importlib.import_module(f"{__name__}.{kind}")


@dataclass(frozen=True, slots=True)
class DeviceKey:
    """A registry device key that belongs to a kind (channel, stream, rated_power_w...), and
    the `boucle flash` option that sets it (--rated-flow-m3-h for rated_flow_m3_h)."""

    name: str
    type: Any
    """Its value's type (float, str, a Literal of the allowed values); optional in the file."""
    doc: str
    gt: float | None = None
    """Values must be above this (rated rates and capacities: > 0)."""
    option: str | None = None
    """The flash option's help (after "<kind> devices: "); None: no option."""
    default: Any = None
    """What flash writes when the option is not given (None: the key is left out)."""
    required: str | None = None
    """Flash refuses a board of this kind without the option, with this message
    ({profile} is the profile's name)."""


@dataclass(frozen=True, slots=True)
class CliOption:
    """An option of `boucle calibrate` a kind's calibration steps take (--known-l)."""

    name: str
    help: str
    default: float | None = None


def device_keys() -> list[tuple[str, DeviceKey]]:
    """(kind, key) of every kind's registry device keys, in KINDS order."""
    return [(k, key) for k in KINDS for key in server(k).DEVICE_KEYS]


def calibrate_options() -> list[CliOption]:
    """Every kind's `boucle calibrate` options, in KINDS order."""
    return [o for k in KINDS for o in server(k).CALIBRATE_OPTIONS]


def calibration_value(kind: str, name: str, args: Any) -> float | None:
    """The reference value `boucle calibrate` gives a kind's steps: option `name` of `args`,
    or what the kind's `calibration_value(name, args)` makes of its options."""
    derive = getattr(server(kind), "calibration_value", None)
    return derive(name, args) if derive else getattr(args, name, None)


def component(kind: str, name: str) -> ModuleType | None:
    """The module an app names for a kind (name: "SIMULATOR", "FIWARE"), imported; None
    when the kind has none."""
    path = getattr(server(kind), name, None)
    return importlib.import_module(path) if path else None


def components(name: str) -> dict[str, ModuleType]:
    """An app's module of each kind that has one (`component(kind, name)`), in KINDS order."""
    return {k: m for k in KINDS if (m := component(k, name)) is not None}
