"""Energy's physical model: one building per site, whose load its grid meters see net of
its PV roof and whose shared machines (`load` sub-meters) run sessions while it is open;
the meters in front of the firmware's integer EnergyCounter.

profiles.toml: [energy.<site kind>] (base and open load, start-up peak, heating), [machine],
[pv], [general] (noise, current clamps' gain error and drift, heating gain).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from boucle_fw.accounting import EnergyCounter

from boucle.registry import is_open
from simulator.devices import VirtualCounterMeter, device_rng
from simulator.profiles import Profiles, is_holiday

KIND = "energy"
COUNTER = "energy_wh"
COUNTED = "wh"


@dataclass
class VirtualMeter(VirtualCounterMeter):
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


def virtual(fleet, dev, common: dict, saved) -> VirtualMeter:
    """A meter resuming its NVS total; a current clamp with its own gain error."""
    vd = VirtualMeter(**common, counter=EnergyCounter(saved.counters.get(COUNTER, 0)))
    if dev.profile == "energy-ct":
        error = fleet.profiles.general.get("ct_gain_error_pct", 0.0) / 100
        vd.gain = 1 + random.Random(f"{fleet.seed}:{dev.id}:gain").gauss(0, error)
    fleet.ledger.describe(dev.id, site=common["site"].id, territory=common["territory"], kind=KIND,
                          channel=dev.channel)
    return vd


def step(fleet, group, meters: list[VirtualMeter], ts: int, local: datetime, dt_s: int) -> None:
    """The building's load, its PV and machines this step, then every meter's reading."""
    profiles = fleet.profiles
    state = group.state.setdefault(KIND, {"rng": None, "cloud_hour": -1, "cloud": 0.0, "machine_on": {}})
    if state["rng"] is None:
        state["rng"] = device_rng(fleet.seed, f"{group.site.id}@building")
    noise = profiles.general["sensor_noise_w_pct"]
    building = building_power_w(profiles, group.site.kind, group.hours, local)
    building *= 1 + state["rng"].gauss(0, 0.03)
    machine_cfg = profiles.raw["machine"]
    if state["cloud_hour"] != ts // 3600:
        state["cloud_hour"], state["cloud"] = ts // 3600, _cloud(fleet, group.site.id, ts)
    cloud = state["cloud"]
    channel = {m.device.id: m.device.channel for m in meters}
    powers: dict[str, float] = {}
    for m in meters:
        rated = m.device.rated_power_w or 3000.0
        if m.device.channel == "pv_production":
            lat, lon = group.site.location
            powers[m.device.id] = pv_power_w(profiles, rated, lat, lon, ts, cloud)
        elif m.device.channel == "load":
            powers[m.device.id] = _machine_power(group, state["machine_on"], m, rated, machine_cfg, dt_s)
    load = building + sum(p for d, p in powers.items() if channel[d] == "load")
    pv = sum(p for d, p in powers.items() if channel[d] == "pv_production")
    grid = [m for m in meters if m.device.channel == "grid_import"]
    # A site never draws more than its connection allows (the breaker would trip):
    # the load is capped at 90 % of the grid meters' rated power.
    rated = sum(m.device.rated_power_w or 0 for m in grid)
    if rated:
        load = min(load, 0.9 * rated + pv)
    for m in grid:
        powers[m.device.id] = max(0.0, load - pv) / len(grid)
    drift = profiles.general.get("ct_gain_drift_pct_per_day", 0.0) / 100 * (dt_s / 86400) ** 0.5
    for m in meters:
        if drift and m.device.profile == "energy-ct":
            m.gain += m.rng.gauss(0, drift)
        before = m.true_wh
        reading = m.measure(ts, powers[m.device.id], dt_s, noise)
        if m.device.id in fleet.external:
            fleet.world[m.device.id] = {"power_w": max(0.0, powers[m.device.id])}
            reading = None
        fleet.keep(m, reading, ts)
        fleet.ledger.add(m.device.id, ts, true_wh=m.true_wh - before, readings=int(reading is not None))
        fleet.state[m.device.id].counters[COUNTER] = m.counter.total_wh


def _machine_power(group, machine_on: dict[str, bool], m: VirtualMeter, rated: float, cfg, dt_s: int) -> float:
    on = machine_on.get(m.device.id, False)
    if group.open_now:
        minutes_open = 600.0
        step_min = dt_s / 60  # the chances are per minute of the step
        if on and m.rng.random() < step_min / cfg["session_minutes"]:
            on = False
        elif not on and m.rng.random() < cfg["sessions_per_day"] * step_min / minutes_open:
            on = True
    else:
        on = False
    machine_on[m.device.id] = on
    return rated * (cfg["load_share"] if on else cfg["idle_kw_share"])


def _cloud(fleet, site_id: str, ts: int) -> float:
    """Cloud cover 0..1 of a site's hour: the (UTC) day's weather, fixed by (seed, site,
    day), plus passing clouds, fixed by (seed, site, hour)."""
    pv = fleet.profiles.raw["pv"]
    day = device_rng(fleet.seed, f"{site_id}#cloud{ts // 86400}").gauss(pv["cloud_mean"], pv["cloud_step"])
    hour = device_rng(fleet.seed, f"{site_id}#cloud-h{ts // 3600}").gauss(0, pv.get("cloud_hourly", 0.0))
    return min(1.0, max(0.0, day + hour))


def site_profile(profiles: Profiles, site_kind: str) -> dict[str, Any]:
    """[energy.<site kind>] of the profiles, else [energy.other]."""
    return profiles.raw["energy"].get(site_kind, profiles.raw["energy"]["other"])


def heating_factor(profiles: Profiles, local: datetime) -> float:
    """1 + gain on 15 January, falling to 1 from April to October (cosine over the year)."""
    day = local.timetuple().tm_yday
    return 1.0 + profiles.general["heating_gain"] * max(0.0, math.cos(2 * math.pi * (day - 15) / 365.25)) ** 2


def building_power_w(profiles: Profiles, site_kind: str, hours: dict, local: datetime) -> float:
    """Site load before noise: base when closed, open load with a start-up peak when open."""
    p = site_profile(profiles, site_kind)
    base, open_kw = p["base_kw"] * 1000, p["open_kw"] * 1000
    heat = heating_factor(profiles, local) if p.get("heating") else 1.0
    if is_holiday(profiles, local, site_kind):
        return base * heat
    open_now = is_open(hours, local)
    early = p.get("early_start_h", 0.0)
    if not open_now and early:
        open_now = is_open(hours, local + timedelta(hours=early))
    if not open_now:
        return base * heat
    minutes_open = _minutes_since_opening(hours, local)
    peak = p["startup_peak"] if minutes_open is not None and minutes_open < 15 else 1.0
    return (base + (open_kw - base) * peak) * heat


def _minutes_since_opening(hours: dict, local: datetime) -> float | None:
    t = local.hour * 60 + local.minute
    for start, end in hours.get(local.weekday(), []):
        s = start.hour * 60 + start.minute
        if s <= t < end.hour * 60 + end.minute:
            return t - s
    return None


def solar_elevation_deg(lat: float, lon: float, ts: float) -> float:
    """Sun elevation above the horizon (NOAA's simple formulas; ±0.5° is plenty here)."""
    day = ts / 86400.0 + 2440587.5 - 2451545.0  # days since J2000
    g = math.radians((357.529 + 0.98560028 * day) % 360)
    q = (280.459 + 0.98564736 * day) % 360
    ecl_lon = math.radians(q + 1.915 * math.sin(g) + 0.020 * math.sin(2 * g))
    obliquity = math.radians(23.439 - 0.00000036 * day)
    decl = math.asin(math.sin(obliquity) * math.sin(ecl_lon))
    ra = math.atan2(math.cos(obliquity) * math.sin(ecl_lon), math.cos(ecl_lon))
    gmst_h = (18.697374558 + 24.06570982441908 * day) % 24
    hour_angle = math.radians(gmst_h * 15 + lon) - ra
    lat_r = math.radians(lat)
    sin_el = math.sin(lat_r) * math.sin(decl) + math.cos(lat_r) * math.cos(decl) * math.cos(hour_angle)
    return math.degrees(math.asin(max(-1.0, min(1.0, sin_el))))


def pv_power_w(profiles: Profiles, rated_w: float, lat: float, lon: float, ts: float, cloud: float) -> float:
    """PV output: clear-sky irradiance (Haurwitz-like) attenuated by cloud cover 0..1."""
    elevation = solar_elevation_deg(lat, lon, ts)
    if elevation <= 0:
        return 0.0
    s = math.sin(math.radians(elevation))
    clear = 1098.0 * s * math.exp(-0.057 / s) / 1000.0  # fraction of 1 kW/m²
    return rated_w * profiles.raw["pv"]["performance_ratio"] * clear * (1 - 0.75 * cloud**3)
