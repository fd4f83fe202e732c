"""Water's physical model: what a site of each kind draws while open and closed, and a
seeded share of sites with a leak that never stops; meters with a pulse output in front of
the firmware's litre counting (EnergyCounter.add_pulses_ml, as boucle_fw.kinds.water
accounts a board's pulses).

profiles.toml: [water] (litres_per_pulse, leak_share, leak_lph), [water.sites] per site kind.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from boucle_fw.accounting import EnergyCounter

from simulator.devices import VirtualCounterMeter

KIND = "water"
COUNTER = "water_l"
COUNTED = "litres"


@dataclass
class VirtualWaterMeter(VirtualCounterMeter):
    """A water meter's pulse output in front of the firmware's litre counting."""

    ml_per_pulse: int = 1000
    true_l: float = 0.0
    pulsed_ml: int = 0       # mL the meter's dial turned, in whole pulses emitted

    def measure(self, ts: int, flow_lph: float, dt_s: float) -> dict[str, Any] | None:
        """Draw `flow_lph` over the last `dt_s` through the meter; a reading when due."""
        self.true_l += max(0.0, flow_lph) * dt_s / 3600
        pulses = (int(self.true_l * 1000) - self.pulsed_ml) // self.ml_per_pulse
        self.pulsed_ml += pulses * self.ml_per_pulse
        if self.dead:
            return None
        self.counter.add_pulses_ml(pulses, self.ml_per_pulse)
        if not self.due():
            return None
        reading = self.stamp(ts)
        reading["water_l"] = self.counter.total_wh
        reading["flow_lpm"] = max(0.0, flow_lph) / 60
        return reading


def virtual(fleet, dev, common: dict, saved) -> VirtualWaterMeter:
    """A meter resuming its NVS litres, one pulse per [water] litres_per_pulse."""
    litres_per_pulse = fleet.profiles.raw["water"]["litres_per_pulse"]
    fleet.ledger.describe(dev.id, site=common["site"].id, territory=common["territory"], kind=KIND)
    return VirtualWaterMeter(**common, counter=EnergyCounter(saved.counters.get(COUNTER, 0)),
                             ml_per_pulse=round(litres_per_pulse * 1000))


def step(fleet, group, meters: list[VirtualWaterMeter], ts: int, local, dt_s: int) -> None:
    """Each meter draws its site kind's open or closed flow, plus the site's leak."""
    state = group.state.setdefault(KIND, {})
    if "leak_lph" not in state:
        state["leak_lph"] = leak_lph(fleet.profiles, fleet.seed, group.site.id)
    use = site_use(fleet.profiles, group.site.kind)
    for w in meters:
        flow = use["open_lph"] * w.rng.uniform(0.2, 1.8) if group.open_now else use["closed_lph"]
        flow += state["leak_lph"]
        before = w.true_l
        reading = w.measure(ts, flow, dt_s)
        if w.device.id in fleet.external:
            fleet.world[w.device.id] = {"flow_lph": flow}
            reading = None
        fleet.keep(w, reading, ts)
        fleet.ledger.add(w.device.id, ts, true_l=w.true_l - before, readings=int(reading is not None))
        fleet.state[w.device.id].counters[COUNTER] = w.counter.total_wh


def site_use(profiles, site_kind: str) -> dict[str, float]:
    """open_lph and closed_lph of a site of this kind ([water.sites], else other)."""
    table = profiles.raw["water"]["sites"]
    return table.get(site_kind, table["other"])


def leak_lph(profiles, seed: int, site_id: str) -> float:
    """A site's leak (L/h; 0 for most), fixed by (seed, site)."""
    cfg = profiles.raw.get("water", {})
    r = random.Random(f"{seed}:{site_id}:leak")
    if not cfg or r.random() >= cfg.get("leak_share", 0.0):
        return 0.0
    lo, hi = cfg["leak_lph"]
    return r.uniform(lo, hi)
