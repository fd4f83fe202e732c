"""Virtual devices: simulated sensors in front of the firmware's own logic.

Each kind's devices are its model's (simulator/models/); meters count with the firmware's
integer EnergyCounter. Readings wait in the firmware's store-and-forward ReadingBuffer, a clock that is not synced yet stamps and
re-stamps with the firmware's Timebase, and every payload is cut by the firmware's
encoder with the firmware's flush rule (same boot, stamped, oldest first), so the
gateway sees exactly what a board would send.
"""

from __future__ import annotations

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

from boucle.kinds import COUNTERS
from boucle.registry import Device, Site


@dataclass
class NvsState:
    """What survives a simulator restart, like a board's NVS: boot counter and counter totals
    by counter field (energy_wh of an energy meter, water_l of a water meter)."""

    boot: int = 0
    counters: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        """As the state file keeps it: boot and every kind's counter (0 when not this one's)."""
        return {"boot": self.boot, **{c: self.counters.get(c, 0) for c in COUNTERS}}

    @classmethod
    def from_dict(cls, saved: dict[str, int]) -> NvsState:
        return cls(saved.get("boot", 0), {k: v for k, v in saved.items() if k != "boot"})


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
class VirtualCounterMeter(VirtualDevice):
    """A meter kind's device: the firmware's integer counter (EnergyCounter: Wh, L...), and
    what the server counts of it as its readings leave."""

    counter: EnergyCounter = field(default_factory=EnergyCounter)
    last_sent: int | None = None
    last_sent_ts: int = 0

    def counted(self, ts: int, value: int) -> list[tuple[int, float]]:
        """What the server counts for a reading of the counter when it arrives (hourly_increase)."""
        out, self.last_sent, self.last_sent_ts = hourly_increase(self.last_sent, self.last_sent_ts, value, ts)
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


def device_rng(seed: int, device_id: str) -> random.Random:
    """A random stream of a device's own: adding a device does not change the others."""
    return random.Random(f"{seed}:{device_id}")


def local_time(ts: int, tz) -> datetime:
    return datetime.fromtimestamp(ts, tz)
