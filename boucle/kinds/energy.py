"""Energy on the servers: a meter's channel and rated power in the registry, the CT clamp's
calibration options, and the apps' modules for it (boucle_fw.kinds.energy says what it
measures)."""

from __future__ import annotations

from typing import Literal

from boucle.kinds import CliOption, DeviceKey

Channel = Literal["grid_import", "pv_production", "load"]

DEVICE_KEYS = (
    DeviceKey("channel", Channel, "What the meter measures: the grid connection, PV production or one load.",
              option="what the meter measures (default grid_import)", default="grid_import"),
    DeviceKey("rated_power_w", float, "Rated power of the circuit, W: bounds counter deltas.", gt=0,
              option="rated power of the circuit"),
)

CALIBRATE_OPTIONS = (
    CliOption("known_a", "CT clamps: current of the reference load in amps"),
    CliOption("known_w", "CT clamps: power of a resistive reference load in watts (amps = W / --voltage-v)"),
    CliOption("voltage_v", "mains voltage for --known-w (default 230)", default=230.0),
)

SIMULATOR = "simulator.models.energy"
FIWARE = None  # energy is served as KeyPerformanceIndicator entities only


def check(device, registry) -> list[tuple[str, str, str]]:
    """(key, problem, fix) of what the registry refuses in an energy device."""
    if device.channel is None:
        return [("channel", "an energy device needs a channel",
                 "add channel = \"grid_import\", \"pv_production\" or \"load\"")]
    return []


def calibration_value(name: str, args) -> float | None:
    """The reference value of a calibration: amps, or a resistive load's watts ÷ volts."""
    value = getattr(args, name, None)
    if name == "known_a" and not value and getattr(args, "known_w", None):
        value = args.known_w / args.voltage_v
    return value
