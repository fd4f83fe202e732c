"""A throwaway device kind, `gas`, for tests only (never shipped): its firmware kind and
sensor type, its server side, its simulator model and its FIWARE entities, each a module
of this package, registered the way a shipped kind is (a name in KINDS and TYPES, the
modules its server descriptor names). `install()` must run before the components are
imported: they read the registries when they load, as they do at start."""

from __future__ import annotations

import importlib
import sys


def install() -> None:
    """Register `gas` (kind) and `gas_pulse` (sensor type) as a shipped kind is registered."""
    from boucle_fw import kinds, sensors

    assert "boucle.kinds" not in sys.modules, "install() before the components are imported"
    kinds.KINDS = (*kinds.KINDS, "gas")
    sensors.TYPES = (*sensors.TYPES, "gas_pulse")
    for name, module in (("boucle_fw.kinds.gas", "fw_kind"), ("boucle_fw.sensors.gas_pulse", "fw_sensor"),
                         ("boucle.kinds.gas", "server")):
        sys.modules[name] = importlib.import_module(f"{__name__}.{module}")
