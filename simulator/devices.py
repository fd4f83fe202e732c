"""Virtual devices: simulated sensors in front of the firmware's own logic.

Energy meters count with the firmware's integer EnergyCounter, readings wait in the
firmware's store-and-forward ReadingBuffer, a clock that is not synced yet stamps and
re-stamps with the firmware's Timebase, and every payload is cut by the firmware's
encoder with the firmware's flush rule (same boot, stamped, oldest first), so the
gateway sees exactly what a board would send.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from boucle_fw.accounting import EnergyCounter
from boucle_fw.buffer import ReadingBuffer
from boucle_fw.commands import CommandHandler
from boucle_fw.device import MAX_BATCHES_PER_CYCLE, next_batch
from boucle_fw.signing import Signer
from boucle_fw.timebase import Timebase

from boucle.registry import Device, Site


@dataclass
class NvsState:
    """What survives a simulator restart, like a board's NVS: boot counter and counter total
    (Wh of an energy meter, L of a water meter)."""

    boot: int = 0
    energy_wh: int = 0
    water_l: int = 0


@dataclass
class VirtualDevice:
    device: Device
    site: Site
    territory: str
    rng: random.Random
    boot: int
    buffer: ReadingBuffer
    seq: int = 0
    online: bool = True
    dead: bool = False
    clock: Timebase | None = None   # set while the clock is not synced: readings wait for NTP
    boot_ts: int = 0
    mono_ms: int = 0
    payloads_to_repeat: int = 0     # duplicate fault: publish the next payloads twice
    every: int = 1                  # take a reading every `every` fleet steps (set_interval)
    cycles: int = 0
    reset_cause: str = "power_on"
    reboot_requested: bool = False  # the reboot command: acknowledged now, done at the next step
    commands: CommandHandler | None = None
    signer: Signer | None = None    # the device's key store entry: it signs as the firmware does

    def due(self) -> bool:
        """Whether this fleet step is one of the device's sampling moments."""
        due = self.cycles % self.every == 0
        self.cycles += 1
        return due

    def stamp(self, ts: int) -> dict[str, Any]:
        """A new reading with seq, boot and ts (or mono_ms if the clock is not synced)."""
        reading: dict[str, Any] = {"seq": self.seq, "boot": self.boot}
        self.seq += 1
        if self.clock is None:
            reading["ts"] = ts
        else:
            self.mono_ms = (ts - self.boot_ts) * 1000
            self.clock.stamp(reading, self.mono_ms)
        return reading

    def reboot(self, ts: int, synced: bool = True) -> None:
        """Orderly restart: boot +1, seq from 0; the buffer (on flash) keeps its readings."""
        self.boot += 1
        self.seq = 0
        self.cycles = 0
        self.reset_cause = "soft"
        self.boot_ts = ts
        self.mono_ms = 0
        self.clock = None if synced else Timebase(lambda: self.mono_ms)

    def sync_clock(self, ts: int) -> None:
        """NTP answered: re-stamp the readings of this boot, drop those that cannot be placed."""
        clock = self.clock
        if clock is None:
            return
        self.mono_ms = (ts - self.boot_ts) * 1000
        clock.sync(ts)
        boot = self.boot
        self.buffer.restamp(lambda r: clock.restamp(r, boot))
        self.buffer.discard(lambda r: r.get("ts") is not None)
        self.clock = None

    def sendable(self) -> Iterator[tuple[bytes, list[dict[str, Any]]]]:
        """Payloads the device would publish now, as the firmware's flush: oldest first, as
        many of the next PEEK (100) readings as fit one payload (8 KiB), one boot per payload,
        stopping at a reading that waits for the clock; at most 10 payloads per cycle.
        Readings leave the buffer as their payload is handed out."""
        sent = 0
        while sent < MAX_BATCHES_PER_CYCLE and self.buffer.depth:
            batch = next_batch(self.buffer, self.device.id, self.boot, signer=self.signer)
            if batch is None:
                return
            payload, count = batch
            yield payload, self.buffer.peek(count)
            self.buffer.drop(count)
            sent += 1


@dataclass
class VirtualMeter(VirtualDevice):
    counter: EnergyCounter = field(default_factory=EnergyCounter)
    last_sent_wh: int | None = None
    last_sent_ts: int = 0
    true_wh: float = 0.0
    gain: float = 1.0        # current clamps: measured / true power (gain error and drift)

    def measure(self, ts: int, power_w: float, dt_s: float, noise_pct: float) -> dict[str, Any] | None:
        """Integrate `power_w` over the last `dt_s` and take a reading (None: sensor dead)."""
        power_w = max(0.0, power_w)
        self.true_wh += power_w * dt_s / 3600
        if self.dead:
            return None
        self.counter.add_power(power_w * self.gain, int(dt_s * 1000))
        if not self.due():
            return None
        measured = power_w * self.gain * (1 + self.rng.gauss(0, noise_pct / 100)) if power_w > 0 else 0.0
        reading = self.stamp(ts)
        reading["energy_wh"] = self.counter.total_wh
        reading["power_w"] = max(0.0, measured)
        if self.device.profile in ("energy-pzem", "energy-ct"):
            voltage = 230.0 + self.rng.gauss(0, 1.5)
            reading["voltage_v"] = voltage
            # Meters above 12 kW rated are three-phase: current per phase.
            phases = 3 if (self.device.rated_power_w or 0) > 12000 else 1
            reading["current_a"] = max(0.0, measured) / voltage / phases
            if self.device.profile == "energy-pzem":
                reading["power_factor"] = 0.95 if measured > 0 else 0.0
        return reading

    def counted(self, ts: int, energy_wh: int) -> list[tuple[int, float]]:
        """The Wh the server counts for this reading when it arrives (hourly_increase)."""
        out, self.last_sent_wh, self.last_sent_ts = hourly_increase(self.last_sent_wh, self.last_sent_ts,
                                                                    energy_wh, ts)
        return out


def hourly_increase(last: int | None, last_ts: int, value: int, ts: int
                    ) -> tuple[list[tuple[int, float]], int, int]:
    """What the server counts of a counter reading when it arrives: the increase since the
    previous reading it got (a decrease being a restart from zero that counts in full),
    spread as the server spreads it, linearly over the time since that reading. As (an
    instant of each hour, amount accrued in that hour), then the new (last, last_ts)."""
    if last is None:
        return [], value, ts
    delta = value - last if value >= last else value
    if ts <= last_ts:
        return [(ts, float(delta))], value, ts
    out, lo = [], last_ts
    while lo < ts:
        hi = min(ts, lo - lo % 3600 + 3600)
        out.append((lo, delta * (hi - lo) / (ts - last_ts)))
        lo = hi
    return out, value, ts


@dataclass
class VirtualWaterMeter(VirtualDevice):
    """A water meter's pulse output in front of the firmware's litre counting
    (EnergyCounter.add_pulses_ml, as boucle_fw.kinds.water accounts a board's pulses)."""

    counter: EnergyCounter = field(default_factory=EnergyCounter)
    ml_per_pulse: int = 1000
    leak_lph: float = 0.0
    true_l: float = 0.0
    pulsed_ml: int = 0       # mL the meter's dial turned, in whole pulses emitted
    last_sent_l: int | None = None
    last_sent_ts: int = 0

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

    def counted(self, ts: int, water_l: int) -> list[tuple[int, float]]:
        out, self.last_sent_l, self.last_sent_ts = hourly_increase(self.last_sent_l, self.last_sent_ts, water_l, ts)
        return out


@dataclass
class VirtualBin(VirtualDevice):
    content_kg: float = 0.0
    drift_g: float = 0.0
    activity: float = 1.0  # this bin's deposits relative to its site kind's average
    tare_g: float = 0.0    # zero offset set by the tare command

    def raw_g(self) -> float:
        """What the load cell feels, before tare and noise: content plus slow drift."""
        return self.content_kg * 1000 + self.drift_g

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

    def measure(self, ts: int, noise_g: float, drift_g_per_min: float) -> dict[str, Any] | None:
        self.drift_g += self.rng.gauss(0, drift_g_per_min)
        if self.dead or not self.due():
            return None
        reading = self.stamp(ts)
        if self.measures_weight:
            reading["weight_g"] = round(self.raw_g() - self.tare_g + self.rng.gauss(0, noise_g))
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
