"""Virtual devices: simulated sensors in front of the firmware's own logic.

Energy meters count with the firmware's integer EnergyCounter and every payload is built
by the firmware's encoder, so the gateway sees exactly what a board would send.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from boucle.registry import Device, Site
from boucle_fw.accounting import EnergyCounter


@dataclass
class NvsState:
    """What survives a simulator restart, like a board's NVS: boot counter and energy total."""

    boot: int = 0
    energy_wh: int = 0


@dataclass
class VirtualDevice:
    device: Device
    site: Site
    territory: str
    rng: random.Random
    boot: int
    seq: int = 0
    pending: list[dict[str, Any]] = field(default_factory=list)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


@dataclass
class VirtualMeter(VirtualDevice):
    counter: EnergyCounter = field(default_factory=EnergyCounter)
    last_sent_wh: int | None = None
    true_wh: float = 0.0

    def measure(self, ts: int, power_w: float, dt_s: float, noise_pct: float) -> tuple[dict[str, Any], int]:
        """Integrate `power_w` over the last `dt_s` and take a reading; returns (reading, counted Wh)."""
        power_w = max(0.0, power_w)
        self.counter.add_power(power_w, int(dt_s * 1000))
        self.true_wh += power_w * dt_s / 3600
        measured = power_w * (1 + self.rng.gauss(0, noise_pct / 100)) if power_w > 0 else 0.0
        total = self.counter.total_wh
        counted = 0 if self.last_sent_wh is None else total - self.last_sent_wh
        self.last_sent_wh = total
        reading = {"seq": self.next_seq(), "ts": ts, "energy_wh": total, "power_w": max(0.0, measured)}
        if self.device.profile in ("energy-pzem", "energy-ct"):
            voltage = 230.0 + self.rng.gauss(0, 1.5)
            reading["voltage_v"] = voltage
            # Meters above 12 kW rated are three-phase: current per phase.
            phases = 3 if (self.device.rated_power_w or 0) > 12000 else 1
            reading["current_a"] = max(0.0, measured) / voltage / phases
            if self.device.profile == "energy-pzem":
                reading["power_factor"] = 0.95 if measured > 0 else 0.0
        return reading, counted


@dataclass
class VirtualBin(VirtualDevice):
    content_kg: float = 0.0
    drift_g: float = 0.0

    @property
    def capacity_kg(self) -> float:
        return self.device.capacity_kg or 100.0

    @property
    def measures_weight(self) -> bool:
        return self.device.profile != "waste-ultrasonic"

    def deposit(self, kg: float) -> tuple[float, bool]:
        """Put `kg` in the bin; what does not fit (beyond 110 % of capacity) lands beside it."""
        room = max(0.0, self.capacity_kg * 1.1 - self.content_kg)
        accepted = min(kg, room)
        self.content_kg += accepted
        return accepted, accepted < kg

    def empty(self) -> float:
        collected, self.content_kg = self.content_kg, 0.0
        return collected

    def measure(self, ts: int, noise_g: float, drift_g_per_min: float) -> dict[str, Any]:
        reading: dict[str, Any] = {"seq": self.next_seq(), "ts": ts}
        if self.measures_weight:
            self.drift_g += self.rng.gauss(0, drift_g_per_min)
            reading["weight_g"] = int(round(self.content_kg * 1000 + self.drift_g + self.rng.gauss(0, noise_g)))
        else:
            fill = 100.0 * self.content_kg / self.capacity_kg + self.rng.gauss(0, 0.8)
            reading["fill_pct"] = min(100.0, max(0.0, fill))
        return reading


def device_rng(seed: int, device_id: str) -> random.Random:
    """A random stream of a device's own: adding a device does not change the others."""
    return random.Random(f"{seed}:{device_id}")


def lognormal_kg(rng: random.Random, mean_kg: float, sigma: float) -> float:
    mu = math.log(mean_kg) - sigma**2 / 2
    return rng.lognormvariate(mu, sigma)


def local_time(ts: int, tz) -> datetime:
    return datetime.fromtimestamp(ts, tz)
