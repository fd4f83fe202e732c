"""Waste's physical model: deposits into each bin while its site is open (lognormal masses,
a bin's own activity), collection rounds (some early, some missed), and the load cell or
distance sensor that watches the content: read at every fleet step, reported every
interval and at once on an emptying, as the firmware does (boucle_fw.device.Device.watch).

profiles.toml: [waste.deposit_kg_per_day] per site kind and stream, [waste.activity],
[waste.deposit_mass], [waste.collection], [general] (scale noise and drift).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from boucle_fw.config import profiles as fw_profiles
from boucle_fw.kinds.waste import emptied

from simulator.devices import VirtualDevice

KIND = "waste"
COUNTED = None  # a bin keeps no counter


@dataclass
class VirtualBin(VirtualDevice):
    content_kg: float = 0.0
    drift_g: float = 0.0
    activity: float = 1.0  # this bin's deposits relative to its site kind's average
    tare_g: float = 0.0    # zero offset set by the tare command
    watches: bool = True   # reads its sensor between reports (not a deep-sleep battery bin)
    watch_rng: random.Random | None = None  # noise of the samples between reports
    last: tuple[int, dict[str, float], bool] | None = None  # last sample: ts, fields, reported
    unreported_kg: float = 0.0  # deposits since the last reading, that no reading shows yet
    hidden_kg: float = 0.0      # those of them an emptying took away this step

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
        self.unreported_kg += accepted
        return accepted, accepted < kg

    def empty(self) -> float:
        collected, self.content_kg = self.content_kg, 0.0
        self.hidden_kg, self.unreported_kg = self.unreported_kg, 0.0
        return collected

    def measure(self, ts: int, noise_g: float, drift_g_per_min: float) -> list[tuple[dict[str, Any], float]]:
        """The sensor read at each fleet step, as the firmware reads it between reports
        (boucle_fw/kinds/waste.py; a deep-sleep bin only wakes to report): a reading when
        due, and at once when the sample shows an emptying, then with the sample before it.
        Each reading comes with the deposits it is the first to show (what the server counts
        at it; a bin's first reading is its baseline)."""
        self.drift_g += self.rng.gauss(0, drift_g_per_min)
        hidden, self.hidden_kg = self.hidden_kg, 0.0
        if self.dead:
            return []
        report = self.due()
        if not (report or self.watches):
            return []
        fields = self._sample(self.rng if report else self.watch_rng, noise_g)
        last, out = self.last, []
        emptying = last is not None and emptied(last[1], fields)
        if emptying and not last[2]:
            out.append(({**self.stamp(last[0]), **last[1]}, hidden))
        if report or emptying:
            seen = self.unreported_kg if last is not None else 0.0
            out.append(({**self.stamp(ts), **fields}, seen))
            self.unreported_kg = 0.0
        self.last = (ts, fields, report or emptying)
        return out

    def _sample(self, rng: random.Random, noise_g: float) -> dict[str, float]:
        if self.measures_weight:
            return {"weight_g": round(self.raw_g() - self.tare_g + rng.gauss(0, noise_g))}
        fill = 100.0 * self.content_kg / self.capacity_kg + rng.gauss(0, 0.8)
        return {"fill_pct": min(100.0, max(0.0, fill))}


def virtual(fleet, dev, common: dict, saved) -> VirtualBin:
    """A bin with its own activity: some see much more use than their site kind's average
    (a busy workshop, a drop-off point on a main road); those are the ones that overflow."""
    overrides = fw_profiles().get(dev.profile, {}).get("overrides") or {}
    asleep = overrides.get("deep_sleep", {}).get("enabled", False)  # a battery bin: no samples between wakes
    vd = VirtualBin(**common, watches=not asleep, watch_rng=random.Random(f"{fleet.seed}:{dev.id}:watch"))
    sigma = fleet.profiles.raw["waste"].get("activity", {}).get("sigma", 0.0)
    vd.activity = random.Random(f"{fleet.seed}:{dev.id}:activity").lognormvariate(-sigma**2 / 2, sigma)
    fleet.ledger.describe(dev.id, site=common["site"].id, territory=common["territory"], kind=KIND,
                          stream=dev.stream, measured="weight" if vd.measures_weight else "fill")
    return vd


def step(fleet, group, bins: list[VirtualBin], ts: int, local, dt_s: int) -> None:
    """Each bin: a collection if one is due, deposits while open, its readings (when due, and
    at an emptying)."""
    for b in bins:
        _step_bin(fleet, group, b, ts, local, dt_s)


def _step_bin(fleet, group, b: VirtualBin, ts: int, local, dt_s: int) -> None:
    profiles = fleet.profiles
    waste = profiles.raw["waste"]
    deposited = collected = 0.0
    emptyings = overflows = 0
    if _collection_due(fleet.seed, waste["collection"], b, local, dt_s):
        collected = b.empty()
        emptyings = 1
    if group.open_now:
        open_today = group.hours[local.weekday()]
        daily = deposits(profiles, group.site.kind).get(b.device.stream, 2.0) * b.activity
        open_minutes = sum((e.hour * 60 + e.minute) - (s.hour * 60 + s.minute) for s, e in open_today)
        mean = waste["deposit_mass"]["mean_kg"]
        rate = daily / mean / max(60, open_minutes) * dt_s / 60  # deposits expected this tick
        while b.rng.random() < rate:
            accepted, overflow = b.deposit(lognormal_kg(b.rng, mean, waste["deposit_mass"]["sigma"]))
            deposited += accepted
            overflows += overflow
            rate -= 1
    general = profiles.general
    readings = b.measure(ts, general["scale_noise_g"], general["scale_drift_g_per_day"] / 1440)
    if b.device.id in fleet.external:
        fleet.world[b.device.id] = {"weight_g": b.raw_g(), "fill": b.content_kg / b.capacity_kg}
        readings = []
    for reading, seen_kg in readings:
        fleet.keep(b, reading, ts)
        fleet.ledger.add(b.device.id, reading["ts"] if reading.get("ts") is not None else ts, reported_kg=seen_kg)
    fleet.ledger.add(b.device.id, ts, deposited_kg=deposited, collected_kg=collected,
                     emptyings=emptyings, overflows=overflows, readings=len(readings))


def deposits(profiles, site_kind: str) -> dict[str, float]:
    """kg a day per stream at a site of this kind ([waste.deposit_kg_per_day], else other)."""
    table = profiles.raw["waste"]["deposit_kg_per_day"]
    return table.get(site_kind, table["other"])


def _collection_due(seed: int, cfg: dict, b: VirtualBin, local, dt_s: int) -> bool:
    """A round every `every_days` at `hour` local time; some rounds come a day early."""
    if local.hour != cfg["hour"] or local.minute >= dt_s / 60:
        return False
    day = local.toordinal() + sum(map(ord, b.device.id)) % cfg["every_days"]
    if day % cfg["every_days"] == 0:
        return _round(seed, b, day // cfg["every_days"], cfg) == "on_time"
    if (day + 1) % cfg["every_days"] == 0:
        return _round(seed, b, (day + 1) // cfg["every_days"], cfg) == "early"
    return False


def _round(seed: int, b: VirtualBin, round_no: int, cfg: dict) -> str:
    """How a bin's collection round goes: early (a day before), missed, or on time."""
    r = random.Random(f"{seed}:{b.device.id}:round{round_no}").random()
    if r < cfg["early_share"]:
        return "early"
    if r < cfg["early_share"] + cfg.get("missed_share", 0.0):
        return "missed"
    return "on_time"


def lognormal_kg(rng: random.Random, mean_kg: float, sigma: float) -> float:
    mu = math.log(mean_kg) - sigma**2 / 2
    return rng.lognormvariate(mu, sigma)
