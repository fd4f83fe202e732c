"""Waste on the servers: a bin's stream and capacity in the registry, the scale's calibration
option, and the apps' modules for it (boucle_fw.kinds.waste says what it measures)."""

from __future__ import annotations

from boucle.kinds import CliOption, DeviceKey

DEVICE_KEYS = (
    DeviceKey("stream", str, "The waste stream the bin collects (a key of [waste_streams]).",
              option="waste stream of the bin (registry [waste_streams])",
              required="profile {profile} is a waste sensor: pass --stream (e.g. residual, packaging)"),
    DeviceKey("capacity_kg", float, "Container capacity, kg.", gt=0, option="container capacity in kg"),
    DeviceKey("capacity_l", float, "Container capacity, L.", gt=0, option="container capacity in litres"),
)

CALIBRATE_OPTIONS = (
    CliOption("known_g", "scales: mass of the reference weight in grams (e.g. 10000 for a 10 kg weight)"),
)

SIMULATOR = "simulator.models.waste"
FIWARE = "cloud.fiware_entities.waste"


def check(device, registry) -> list[tuple[str, str, str]]:
    """(key, problem, fix) of what the registry refuses in a bin."""
    if device.stream is None or device.stream not in registry.waste_streams:
        return [("stream", f"waste stream {device.stream!r} is not in [waste_streams]",
                 f"use one of: {', '.join(sorted(registry.waste_streams)) or '(declare [waste_streams] first)'}")]
    return []
