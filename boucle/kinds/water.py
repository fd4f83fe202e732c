"""Water on the servers: a meter's rated flow in the registry, the meter's calibration
option, and the apps' modules for it (boucle_fw.kinds.water says what it measures)."""

from __future__ import annotations

from boucle.kinds import CliOption, DeviceKey

DEVICE_KEYS = (
    DeviceKey("rated_flow_m3_h", float,
              "Water meters: the meter's permanent flow Q3 (on its plate), bounding counter deltas.", gt=0,
              option="the meter's permanent flow Q3 in m³/h (on its plate, e.g. 2.5)"),
)

CALIBRATE_OPTIONS = (
    CliOption("known_l", "water meters: litres drawn during the check, as read on the meter's dial"),
)

SIMULATOR = "simulator.models.water"
FIWARE = "cloud.fiware_entities.water"


def check(device, registry) -> list[tuple[str, str, str]]:
    """Nothing beyond the keys' own bounds."""
    return []
