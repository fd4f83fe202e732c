"""Generated fleets for the one-truth property: varied meters and bins, their readings, and
a store filled as the gateway fills it (batches out of order, rollups recomputed as they
land).

A fleet is drawn by hypothesis as a plain description (devices, their sensors, intervals,
faults, the territory's zone and the period); its readings come from a seeded random
generator, so a failing example prints everything needed to replay it.
"""

from __future__ import annotations

import random
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from boucle.protocol import Reading, reading_row
from boucle.registry import Registry
from cloud.indicators import Period
from gateway.aggregate import recompute_rollups, roll_up
from gateway.recent import RecentReadings

DAY = 86400
SPRING = datetime(2026, 3, 29)  # Europe/Paris: a 23-hour day
AUTUMN = datetime(2026, 10, 25)  # a 25-hour day


@dataclass(frozen=True)
class Meter:
    channel: str
    interval_s: int
    rated: bool
    profile: bool
    resets: bool
    reboots: bool
    gaps: bool
    power_w: int


@dataclass(frozen=True)
class Bin:
    sensors: str  # "weight", "fill" or "both"
    interval_s: int
    profile: bool
    capacity: bool


@dataclass(frozen=True)
class WaterMeter:
    interval_s: int
    rated: bool
    resets: bool
    gaps: bool
    leak_lph: int
    """Its night flow: 0 (a tight site) or a leak that never stops."""
    busy_lph: int


@dataclass(frozen=True)
class Fleet:
    zone: str
    day: datetime
    shape: str  # "partial", "day", "months"
    meters: tuple[Meter, ...]
    bins: tuple[Bin, ...]
    seed: int
    moved: bool
    """Whether the first meter moved between the two sites during the period."""
    waters: tuple[WaterMeter, ...] = ()
    batches: int = field(default=5)

    @property
    def period(self) -> Period:
        local = self.day.replace(tzinfo=ZoneInfo(self.zone))
        start = int(local.timestamp())
        if self.shape == "partial":  # edges inside quarter-hours
            return Period(start + 6 * 3600 + 7 * 60 + 13, start + 17 * 3600 + 4 * 60 + 51)
        if self.shape == "day":  # the local day: 23, 24 or 25 hours
            end = int(datetime(self.day.year, self.day.month, self.day.day + 1, tzinfo=ZoneInfo(self.zone)).timestamp())
            return Period(start, end)
        # two months and a bit, from the local midnight ten days before
        return Period(start - 10 * DAY, start + 55 * DAY)


INTERVALS = st.sampled_from([60, 300, 900])
meters = st.builds(Meter, st.sampled_from(["grid_import", "grid_import", "pv_production", "load"]), INTERVALS,
                   st.booleans(), st.booleans(), st.booleans(), st.booleans(), st.booleans(),
                   st.integers(50, 20_000))
bins = st.builds(Bin, st.sampled_from(["weight", "fill", "both"]), INTERVALS, st.booleans(), st.booleans())
waters = st.builds(WaterMeter, INTERVALS, st.booleans(), st.booleans(), st.booleans(), st.sampled_from([0, 0, 3, 40]),
                   st.integers(60, 3000))
fleets = st.builds(Fleet, st.sampled_from(["UTC", "Europe/Paris"]), st.sampled_from([SPRING, AUTUMN]),
                   st.sampled_from(["partial", "day", "months"]), st.lists(meters, min_size=1, max_size=4).map(tuple),
                   st.lists(bins, min_size=1, max_size=3).map(tuple), st.integers(0, 2**31), st.booleans(),
                   st.lists(waters, min_size=1, max_size=2).map(tuple))


def registry_of(fleet: Fleet) -> Registry:
    """Two sites of one territory (a Fablab and a workshop, 1 km apart) holding the fleet."""
    lines = ["[waste_streams]", 'residual = "incineration_energy_recovery"', 'packaging = "recycling"', "",
             "[[territories]]", 'id = "terr"', 'name = "T"', 'kind = "commune"', "population = 2000",
             "centroid = [45.77, 4.77]", f'timezone = "{fleet.zone}"', ""]
    for site, kind, lat in (("lab", "fablab", 45.77), ("shop", "sme_workshop", 45.779)):
        lines += ["[[sites]]", f'id = "{site}"', 'territory = "terr"', f'name = "{site}"', f'kind = "{kind}"',
                  f"location = [{lat}, 4.77]", 'opening_hours = "Mo-Sa 08:00-18:30"', ""]
    move = fleet.period.start + (fleet.period.end - fleet.period.start) // 2
    move -= move % 900
    for i, m in enumerate(fleet.meters):
        lines += ["[[devices]]", f'id = "meter-{i}"', f'site = "{"lab" if i % 2 == 0 else "shop"}"',
                  'kind = "energy"', f'channel = "{m.channel}"', f"interval_s = {m.interval_s}"]
        if m.rated:
            lines.append(f"rated_power_w = {m.power_w * 2}")
        if m.profile:
            lines.append('profile = "energy-pzem"')
        if i == 0 and fleet.moved:
            stamp = datetime.fromtimestamp(move, ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")
            lines.append(f'moves = [{{ site = "shop", until = {stamp} }}]')
        lines.append("")
    for i, w in enumerate(fleet.waters):
        lines += ["[[devices]]", f'id = "water-{i}"', f'site = "{"lab" if i % 2 == 0 else "shop"}"',
                  'kind = "water"', 'profile = "water-pulse"', f"interval_s = {w.interval_s}"]
        if w.rated:
            lines.append(f"rated_flow_m3_h = {w.busy_lph * 2 / 1000}")
        lines.append("")
    for i, b in enumerate(fleet.bins):
        lines += ["[[devices]]", f'id = "bin-{i}"', 'site = "lab"', 'kind = "waste"',
                  f'stream = "{"residual" if i % 2 == 0 else "packaging"}"', f"interval_s = {b.interval_s}"]
        if b.capacity:
            lines.append("capacity_kg = 120")
        if b.profile:
            lines.append('profile = "waste-scale"' if b.sensors != "fill" else 'profile = "waste-ultrasonic"')
        lines.append("")
    return Registry.model_validate(tomllib.loads("\n".join(lines)))


def _bursts(fleet: Fleet, rng: random.Random) -> list[tuple[int, int]]:
    """When the fleet reports: around both edges of the period and, for long periods, a few
    days inside it (the rest is a silence that energy is spread across)."""
    p = fleet.period
    spans = [(p.start - 3 * 3600, p.start + 5 * 3600), (p.end - 5 * 3600, p.end + 3 * 3600)]
    if fleet.shape == "months":
        for _ in range(3):
            at = rng.randrange(p.start + DAY, p.end - 2 * DAY)
            spans.append((at, at + rng.randrange(6, 30) * 3600))
    else:
        spans.append((p.start, p.end))
    return sorted(spans)


def readings_of(fleet: Fleet) -> list[Reading]:
    """Every device's readings (seeded: the same fleet gives the same readings)."""
    rng = random.Random(fleet.seed)
    spans = _bursts(fleet, rng)
    out: list[Reading] = []
    for i, m in enumerate(fleet.meters):
        out += _meter(f"meter-{i}", m, spans, rng)
    for i, b in enumerate(fleet.bins):
        out += _bin(f"bin-{i}", b, spans, rng)
    for i, w in enumerate(fleet.waters):
        out += _water(f"water-{i}", w, spans, rng, ZoneInfo(fleet.zone))
    return out


def _times(interval_s: int, spans, rng: random.Random, gaps: bool) -> list[int]:
    times = []
    for lo, hi in spans:
        t = lo + rng.randrange(interval_s)
        while t < hi:
            if not (gaps and rng.random() < 0.08):
                times.append(t)
            t += interval_s
    return sorted(set(times))


def _meter(device: str, m: Meter, spans, rng: random.Random) -> list[Reading]:
    out, wh, boot, seq, last = [], rng.randrange(10_000), 1, 0, None
    for t in _times(m.interval_s, spans, rng, m.gaps):
        if last is not None:
            wh += round(m.power_w * rng.uniform(0.2, 1.2) * (t - last) / 3600)
        if m.resets and rng.random() < 0.01:
            wh = rng.randrange(50)  # the counter restarted from zero
        if m.reboots and rng.random() < 0.01:
            boot, seq = boot + 1, 0
        out.append(Reading(device, boot, seq, t, {"energy_wh": wh, "power_w": float(m.power_w)}))
        seq, last = seq + 1, t
    return out


def _water(device: str, w: WaterMeter, spans, rng: random.Random, zone: ZoneInfo) -> list[Reading]:
    """A supply meter: busy by day (06:00-22:00 local), its leak (or nothing) at night."""
    out, litres, seq, last = [], float(rng.randrange(100_000)), 0, None
    for t in _times(w.interval_s, spans, rng, w.gaps):
        if last is not None:
            hour = datetime.fromtimestamp(t, zone).hour
            rate = w.busy_lph * rng.uniform(0.0, 1.5) if 6 <= hour < 22 else w.leak_lph
            litres += rate * (t - last) / 3600
        if w.resets and rng.random() < 0.01:
            litres = float(rng.randrange(20))  # the counter restarted from zero
        out.append(Reading(device, 1, seq, t, {"water_l": int(litres), "flow_lpm": round(w.leak_lph / 60, 2)}))
        seq, last = seq + 1, t
    return out


def _bin(device: str, b: Bin, spans, rng: random.Random) -> list[Reading]:
    out, level = [], 0.0
    for seq, t in enumerate(_times(b.interval_s, spans, rng, gaps=True)):
        if rng.random() < 0.3:
            level += rng.choice([50.0, 150.0, 400.0, 2000.0])
        if level > 20_000 or rng.random() < 0.03:
            level = rng.choice([0.0, 120.0])  # emptied
        values: dict[str, float | int] = {}
        if b.sensors in ("weight", "both"):
            values["weight_g"] = int(level + rng.gauss(0, 20))
        if b.sensors in ("fill", "both"):
            values["fill_pct"] = round(min(100.0, max(0.0, level / 220 + rng.gauss(0, 0.5))), 1)
        out.append(Reading(device, 1, seq, t, values))
    return out


def fill_as_the_gateway_does(store, registry: Registry, readings: list[Reading], batches: int,
                             seed: int, recent: RecentReadings | None = None) -> None:
    """Write the readings in shuffled batches and recompute each batch's rollups as it
    lands, as the gateway's writer and aggregator do (late data included): with `recent`,
    the aggregate stage's round (`roll_up`, from the memory of what was written, falling
    back to the store for what it does not hold); without, `recompute_rollups` a device at
    a time from the store's readings."""
    rng = random.Random(seed)
    shuffled = list(readings)
    rng.shuffle(shuffled)
    devices = {d.id: d for d in registry.devices}
    size = max(1, len(shuffled) // batches + 1)
    for n, i in enumerate(range(0, len(shuffled), size)):
        batch = shuffled[i:i + size]
        spans: dict[str, tuple[int, int]] = {}
        for r in batch:
            lo, hi = spans.get(r.device, (r.ts, r.ts))
            spans[r.device] = (min(lo, r.ts), max(hi, r.ts))
        if recent is None:
            store.write_readings(batch, received=0.0)
            for device, (lo, hi) in spans.items():
                assert recompute_rollups(store, devices[device], lo, hi)
            continue
        rows = [reading_row(r) for r in batch]
        with recent.lock:  # as the writer does: the store's confirmation, then the memory
            store.write_rows(rows, received=float(n))
            recent.add(rows, float(n))
        dirty = [(d, lo, hi) for d, (lo, hi) in spans.items()]
        assert sorted(roll_up(store, recent, devices, dirty)) == sorted(dirty)
