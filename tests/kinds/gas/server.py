"""The server side of the throwaway `gas` kind (as boucle/kinds/water.py)."""

from boucle.kinds import CliOption, DeviceKey

DEVICE_KEYS = (
    DeviceKey("rated_gas_m3_h", float, "The gas meter's maximum flow, m³/h.", gt=0,
              option="the meter's maximum flow in m³/h (on its plate)",
              required="profile {profile} is a gas meter: pass --rated-gas-m3-h"),
)
CALIBRATE_OPTIONS = (CliOption("known_dm3", "gas meters: dm³ drawn during the check"),)
SIMULATOR = "tests.kinds.gas.sim_model"
FIWARE = "tests.kinds.gas.fiware"


def check(device, registry):
    if device.rated_gas_m3_h is None:
        return [("rated_gas_m3_h", "a gas meter needs its maximum flow", "add rated_gas_m3_h = 6 (m³/h, on its plate)")]
    return []
