# Device kinds: what a device measures (energy, waste, water), one module each, registered
# here. A kind says which reading fields exist (the wire protocol's, with unit, bounds and
# Home Assistant facts), the cumulative counter the device keeps, if any, and how the
# servers account its readings. Sensor types (boucle_fw/sensors/) each belong to a kind.
#
# Plain tuples and dicts, no dataclasses: read on the board and on the servers alike.
#
# A field is (name, decimals, unit, minimum, maximum, description, ha_class, ha_state):
# decimals None for an integer field; ha_class the Home Assistant device class (or None).

KINDS = ("energy", "waste", "water")
"""In wire order: the protocol's fields are the kinds' fields in this order."""

_loaded = {}


def load(package, names, loaded, name):
    """Module `name` of a descriptor package, imported on first use (kept in `loaded`);
    KeyError when `names` does not register it. Also boucle_fw.sensors' loader."""
    mod = loaded.get(name)
    if mod is None:
        if name not in names:
            raise KeyError(name)
        mod = __import__(package + "." + name, None, None, ("KIND",))
        loaded[name] = mod
    return mod


def get(name):
    """The descriptor module of a device kind; KeyError for an unknown one."""
    return load("boucle_fw.kinds", KINDS, _loaded, name)


def fields():
    """Every reading field of every kind, in wire order."""
    out = ()
    for k in KINDS:
        out += get(k).FIELDS
    return out


def field(name):
    """The field tuple of a reading field name; KeyError for an unknown one."""
    for f in fields():
        if f[0] == name:
            return f
    raise KeyError(name)
