# PZEM-004T v3 energy meter on a UART (Modbus-RTU), several on one bus.
from boucle_fw import checks

KIND = "energy"
FIELDS = ("energy_wh", "power_w", "voltage_v", "current_a", "power_factor")
PROFILES = {
    "energy-pzem": {
        "description": "PZEM-004T v3 meter on UART2 (Modbus-RTU, address 1)",
        "sensor": {"type": "pzem", "uart": 2, "tx": 17, "rx": 16, "addresses": [1]},
    },
}
CALIBRATION = None  # calibrated at the factory


def check(errs, s, path):
    checks.num(errs, s, "uart", path, 1, 2, integer=True)
    checks.pin(errs, s, "tx", path, output=True)
    checks.pin(errs, s, "rx", path)
    addrs = s.get("addresses", [1])
    if not isinstance(addrs, list) or not addrs:
        errs.add(path + ".addresses", "%r is not a non-empty list" % (addrs,),
                 "list the Modbus addresses of the meters on the bus, e.g. [1, 2]")
        return
    seen = []
    for i, a in enumerate(addrs):
        if not checks.is_int(a) or not 1 <= a <= 247:
            errs.add("%s.addresses[%d]" % (path, i), "%r is not a Modbus address" % (a,),
                     "use an int from 1 to 247 (each meter set to its own address)")
        elif a in seen:
            errs.add("%s.addresses[%d]" % (path, i), "address %d is repeated" % a,
                     "give each meter on the bus its own address")
        else:
            seen.append(a)


def build(s, settings):
    from boucle_fw.drivers.pzem import Pzem
    return Pzem(s["uart"], s["tx"], s["rx"], s.get("addresses", [1]))
