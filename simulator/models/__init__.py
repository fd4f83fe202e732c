"""The simulator's physical model of each device kind: one module per kind, named by the
kind's server descriptor (`SIMULATOR` of boucle/kinds/<kind>.py), so adding a kind adds its
model here and nothing in the fleet.

A model module has
  COUNTED      the ledger key of what the server counts of the kind's counter ("wh",
               "litres"), or None for a kind without a counter
  virtual(fleet, dev, common, saved) -> VirtualDevice
               a registry device as a virtual device (`common`: the VirtualDevice fields,
               `saved`: its NvsState), described in the ledger; a meter kind's is a
               VirtualCounterMeter (its counter, and what the server counts of it)
  step(fleet, site, devices, ts, local, dt_s)
               advance the site's devices of the kind by `dt_s` seconds to `ts`: what their
               sensors see, their readings (`fleet.keep`), the truth (`fleet.ledger`)

A model gets the whole site (`SiteGroup`: the site and its territory, time zone, opening
hours, `open_now`, every device of every kind in `by_kind`, and `state[kind]`, a dict the
model keeps across steps): the energy model couples a building's grid, PV and load meters
through one building load and one sky. And the fleet: its profiles (each model reads its
own sections of profiles.toml), seed, ledger, NVS state, external devices and their
`world` (what a virtual board's sensors see).
"""

from __future__ import annotations

from types import ModuleType

from boucle import kinds


def models() -> dict[str, ModuleType]:
    """The simulator model of each kind that has one, in KINDS order (the order a site's
    kinds are stepped in)."""
    return kinds.components("SIMULATOR")


def counted() -> list[tuple[str, str]]:
    """(counter field, ledger key) of every kind whose model counts a counter."""
    return [(kinds.METERS[k].counter, m.COUNTED) for k, m in models().items() if m.COUNTED]
