"""The simulated fleet: every registry device as a virtual device, stepped in event time.

`Fleet.step(ts)` advances every device to `ts` and queues its reading; `Fleet.payloads()`
hands out telemetry payloads built by the firmware encoder. No I/O here: publishing
and pacing live in simulator.run.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from zoneinfo import ZoneInfo

from boucle_fw.accounting import EnergyCounter
from boucle_fw.buffer import ReadingBuffer
from boucle_fw.commands import CommandError, CommandHandler, interval_arg
from boucle_fw.protocol import DEFAULT_PREFIX, encode_health, encode_status, topic

from boucle.registry import Registry, parse_opening_hours
from simulator.devices import (
    NvsState,
    VirtualBin,
    VirtualDevice,
    VirtualMeter,
    VirtualWaterMeter,
    device_rng,
    local_time,
    lognormal_kg,
)
from simulator.faults import Fault, garbage_payloads
from simulator.ledger import Ledger
from simulator.profiles import Profiles, building_power_w, is_holiday, pv_power_w

FIRMWARE = "sim-0.2.0"


class SiteGroup:
    """The devices of one site, which share a building load and a PV roof."""

    def __init__(self, site, territory, tz, devices: list[VirtualDevice]):
        self.site = site
        self.territory = territory
        self.tz = tz
        self.hours = parse_opening_hours(site.opening_hours)
        self.devices = devices
        self.machine_on: dict[str, bool] = {}
        self.open_now = False   # this step: open and not a holiday
        self.cloud_hour = -1
        self.cloud = 0.0
        self.rng: random.Random | None = None  # the building's own noise stream
        self.meters: list[VirtualMeter] = []
        self.bins: list[VirtualBin] = []
        self.water: list[VirtualWaterMeter] = []
        self.leak_lph = 0.0  # a leaking site's flow that never stops


class Fleet:
    """Virtual devices for a registry, deterministic for a seed."""

    def __init__(self, registry: Registry, profiles: Profiles, seed: int, ledger: Ledger,
                 state: dict[str, NvsState] | None = None, prefix: str = DEFAULT_PREFIX,
                 faults: list[Fault] | None = None, start_ts: int = 0, interval_s: int = 60,
                 external: frozenset[str] = frozenset()):
        self.registry = registry
        self.profiles = profiles
        self.seed = seed
        self.ledger = ledger
        self.prefix = prefix
        self.state = state if state is not None else {}
        # Devices whose readings come from elsewhere (virtual boards running the firmware,
        # simulator/firmware_devices.py): the fleet models their world (power, bin content)
        # and its truth in the ledger, and neither samples, publishes nor answers for them.
        self.external = external
        self.world: dict[str, dict[str, float]] = {}  # external device -> what its sensors see
        self.groups: list[SiteGroup] = []
        self.devices: dict[str, VirtualDevice] = {}
        self.faults = sorted(faults or [], key=lambda f: f.start)
        self._fault_phase = [0] * len(self.faults)  # 0 not started, 1 active, 2 over
        self._garbage: list[tuple[VirtualDevice, int]] = []
        self.status_out: list[tuple[str, bytes]] = []  # retained birth messages after reboots
        self.sent = {"payloads": 0, "duplicates": 0, "garbage": 0}
        buffer_cfg = profiles.raw.get("device", {})
        by_site: dict[str, list] = {}
        for dev in registry.devices:
            by_site.setdefault(dev.site, []).append(dev)
        territories = {t.id: t for t in registry.territories}
        for site in registry.sites:
            territory = territories[site.territory]
            group = SiteGroup(site, territory, ZoneInfo(territory.timezone), [])
            for dev in by_site.get(site.id, []):
                saved = self.state.setdefault(dev.id, NvsState())
                saved.boot += 1  # every simulator start is a reboot of the fleet
                rng = device_rng(seed, dev.id)
                buffer = ReadingBuffer(capacity=buffer_cfg.get("buffer_capacity", 2000), path=None)
                common = {"device": dev, "site": site, "territory": territory.id, "rng": rng,
                          "boot": saved.boot, "buffer": buffer, "boot_ts": start_ts}
                if dev.kind == "energy":
                    vd: VirtualDevice = VirtualMeter(**common, counter=EnergyCounter(saved.energy_wh))
                    if dev.profile == "energy-ct":
                        error = profiles.general.get("ct_gain_error_pct", 0.0) / 100
                        vd.gain = 1 + random.Random(f"{seed}:{dev.id}:gain").gauss(0, error)
                    ledger.describe(dev.id, site=site.id, territory=territory.id, kind="energy",
                                    channel=dev.channel)
                elif dev.kind == "water":
                    vd = self._water_meter(dev, common, saved)
                    ledger.describe(dev.id, site=site.id, territory=territory.id, kind="water")
                else:
                    vd = VirtualBin(**common)
                    # Some bins see much more use than their site kind's average (a busy
                    # workshop, a drop-off point on a main road): those are the ones that overflow.
                    sigma = profiles.raw["waste"].get("activity", {}).get("sigma", 0.0)
                    vd.activity = random.Random(f"{seed}:{dev.id}:activity").lognormvariate(-sigma**2 / 2, sigma)
                    ledger.describe(dev.id, site=site.id, territory=territory.id, kind="waste",
                                    stream=dev.stream,
                                    measured="weight" if vd.measures_weight else "fill")
                # A device's own interval (registry) in whole fleet steps: 300 s -> every 5th step.
                vd.every = max(1, round(dev.interval_s / interval_s))
                group.devices.append(vd)
                self.devices[dev.id] = vd
            if group.devices:
                group.meters = [d for d in group.devices if isinstance(d, VirtualMeter)]
                group.bins = [d for d in group.devices if isinstance(d, VirtualBin)]
                group.water = [d for d in group.devices if isinstance(d, VirtualWaterMeter)]
                group.leak_lph = self._leak(site.id)
                self.groups.append(group)
        self.readings = 0
        self.health_every = buffer_cfg.get("health_every", 10)
        self.interval_s = interval_s
        self._health: list[tuple[str, bytes]] = []
        self._reboots: list[VirtualDevice] = []

    # --- one tick -------------------------------------------------------------------

    def step(self, ts: int, dt_s: int = 60) -> None:
        """Advance every device by `dt_s` seconds to `ts` and take one reading each."""
        self.interval_s = dt_s
        while self._reboots:
            self._reboot(self._reboots.pop(0), ts, synced=True)
        if self.faults:
            self._apply_faults(ts)
        noise = self.profiles.general["sensor_noise_w_pct"]
        for group in self.groups:
            local = local_time(ts, group.tz)
            today = group.hours.get(local.weekday())
            group.open_now = bool(today) and any(s <= local.time() < e for s, e in today) \
                and not is_holiday(self.profiles, local, group.site.kind)
            if group.meters:
                self._step_energy(group, group.meters, ts, local, dt_s, noise)
            for b in group.bins:
                self._step_bin(group, b, ts, local, dt_s)
            for w in group.water:
                self._step_water(group, w, ts, dt_s)

    def _keep(self, dev: VirtualDevice, reading: dict | None, ts: int) -> None:
        """The reading goes into the device's buffer; what the buffer had to drop is counted."""
        if reading is None:
            return
        self.readings += 1
        dropped = dev.buffer.dropped
        dev.buffer.push(reading)
        if dev.buffer.dropped != dropped:
            self.ledger.add(dev.device.id, ts, dropped=dev.buffer.dropped - dropped)
        if self.health_every and dev.online and dev.seq % self.health_every == 1:
            self._health.append((topic(self.prefix, dev.device.id, "health"), self._health_payload(dev, ts)))

    def _health_payload(self, dev: VirtualDevice, ts: int) -> bytes:
        # Heap and RSSI are plausible constants per device (they would only add noise here).
        rssi = -48 - sum(map(ord, dev.device.id)) % 35
        heap = 96_000 - min(dev.buffer.depth, 64) * 180
        return encode_health(dev.boot, ts - dev.boot_ts, heap, rssi, dev.buffer.depth, dev.buffer.dropped,
                             dev.reset_cause, FIRMWARE, None if dev.clock else ts, {"sensor_errors": 0})

    def _step_energy(self, group: SiteGroup, meters: list[VirtualMeter], ts, local, dt_s, noise) -> None:
        if group.rng is None:
            group.rng = device_rng(self.seed, f"{group.site.id}@building")
        building = building_power_w(self.profiles, group.site.kind, group.hours, local)
        building *= 1 + group.rng.gauss(0, 0.03)
        machine_cfg = self.profiles.raw["machine"]
        if group.cloud_hour != ts // 3600:
            group.cloud_hour, group.cloud = ts // 3600, self._cloud(group.site.id, ts)
        cloud = group.cloud
        powers: dict[str, float] = {}
        for m in meters:
            rated = m.device.rated_power_w or 3000.0
            if m.device.channel == "pv_production":
                lat, lon = group.site.location
                powers[m.device.id] = pv_power_w(self.profiles, rated, lat, lon, ts, cloud)
            elif m.device.channel == "load":
                powers[m.device.id] = self._machine_power(group, m, local, rated, machine_cfg)
        load = building + sum(p for d, p in powers.items() if self.devices[d].device.channel == "load")
        pv = sum(p for d, p in powers.items() if self.devices[d].device.channel == "pv_production")
        grid = [m for m in meters if m.device.channel == "grid_import"]
        # A site never draws more than its connection allows (the breaker would trip):
        # the load is capped at 90 % of the grid meters' rated power.
        rated = sum(m.device.rated_power_w or 0 for m in grid)
        if rated:
            load = min(load, 0.9 * rated + pv)
        for m in grid:
            powers[m.device.id] = max(0.0, load - pv) / len(grid)
        drift = self.profiles.general.get("ct_gain_drift_pct_per_day", 0.0) / 100 * (dt_s / 86400) ** 0.5
        for m in meters:
            if drift and m.device.profile == "energy-ct":
                m.gain += m.rng.gauss(0, drift)
            before = m.true_wh
            reading = m.measure(ts, powers[m.device.id], dt_s, noise)
            if m.device.id in self.external:
                self.world[m.device.id] = {"power_w": max(0.0, powers[m.device.id])}
                reading = None
            self._keep(m, reading, ts)
            self.ledger.add(m.device.id, ts, true_wh=m.true_wh - before, readings=int(reading is not None))
            self.state[m.device.id].energy_wh = m.counter.total_wh

    def _machine_power(self, group: SiteGroup, m: VirtualMeter, local, rated: float, cfg) -> float:
        on = group.machine_on.get(m.device.id, False)
        if group.open_now:
            minutes_open = 600.0
            step_min = self.interval_s / 60  # the chances are per minute of the step
            if on and m.rng.random() < step_min / cfg["session_minutes"]:
                on = False
            elif not on and m.rng.random() < cfg["sessions_per_day"] * step_min / minutes_open:
                on = True
        else:
            on = False
        group.machine_on[m.device.id] = on
        return rated * (cfg["load_share"] if on else cfg["idle_kw_share"])

    def _cloud(self, site_id: str, ts: int) -> float:
        """Cloud cover 0..1 of a site's hour: the (UTC) day's weather, fixed by (seed, site,
        day), plus passing clouds, fixed by (seed, site, hour)."""
        pv = self.profiles.raw["pv"]
        day = device_rng(self.seed, f"{site_id}#cloud{ts // 86400}").gauss(pv["cloud_mean"], pv["cloud_step"])
        hour = device_rng(self.seed, f"{site_id}#cloud-h{ts // 3600}").gauss(0, pv.get("cloud_hourly", 0.0))
        return min(1.0, max(0.0, day + hour))

    def _water_meter(self, dev, common: dict, saved: NvsState) -> VirtualWaterMeter:
        litres_per_pulse = self.profiles.raw["water"]["litres_per_pulse"]
        return VirtualWaterMeter(**common, counter=EnergyCounter(saved.water_l),
                                 ml_per_pulse=round(litres_per_pulse * 1000))

    def _leak(self, site_id: str) -> float:
        """A site's leak (L/h; 0 for most), fixed by (seed, site)."""
        cfg = self.profiles.raw.get("water", {})
        r = random.Random(f"{self.seed}:{site_id}:leak")
        if not cfg or r.random() >= cfg.get("leak_share", 0.0):
            return 0.0
        lo, hi = cfg["leak_lph"]
        return r.uniform(lo, hi)

    def _step_water(self, group: SiteGroup, w: VirtualWaterMeter, ts: int, dt_s: int) -> None:
        use = self.profiles.water(group.site.kind)
        flow = use["open_lph"] * w.rng.uniform(0.2, 1.8) if group.open_now else use["closed_lph"]
        flow += group.leak_lph
        before = w.true_l
        reading = w.measure(ts, flow, dt_s)
        if w.device.id in self.external:
            self.world[w.device.id] = {"flow_lph": flow}
            reading = None
        self._keep(w, reading, ts)
        self.ledger.add(w.device.id, ts, true_l=w.true_l - before, readings=int(reading is not None))
        self.state[w.device.id].water_l = w.counter.total_wh

    def _step_bin(self, group: SiteGroup, b: VirtualBin, ts: int, local, dt_s: int) -> None:
        waste = self.profiles.raw["waste"]
        deposited = collected = 0.0
        emptyings = overflows = 0
        if self._collection_due(b, ts, local, dt_s):
            collected = b.empty()
            emptyings = 1
        if group.open_now:
            open_today = group.hours[local.weekday()]
            daily = self.profiles.deposits(group.site.kind).get(b.device.stream, 2.0) * b.activity
            open_minutes = sum((e.hour * 60 + e.minute) - (s.hour * 60 + s.minute) for s, e in open_today)
            mean = waste["deposit_mass"]["mean_kg"]
            rate = daily / mean / max(60, open_minutes) * dt_s / 60  # deposits expected this tick
            while b.rng.random() < rate:
                accepted, overflow = b.deposit(lognormal_kg(b.rng, mean, waste["deposit_mass"]["sigma"]))
                deposited += accepted
                overflows += overflow
                rate -= 1
        general = self.profiles.general
        reading = b.measure(ts, general["scale_noise_g"], general["scale_drift_g_per_day"] / 1440)
        if b.device.id in self.external:
            self.world[b.device.id] = {"weight_g": b.raw_g(), "fill": b.content_kg / b.capacity_kg}
            reading = None
        self._keep(b, reading, ts)
        self.ledger.add(b.device.id, ts, deposited_kg=deposited, collected_kg=collected,
                        emptyings=emptyings, overflows=overflows, readings=int(reading is not None))

    def _collection_due(self, b: VirtualBin, ts: int, local, dt_s: int) -> bool:
        """A round every `every_days` at `hour` local time; some rounds come a day early."""
        cfg = self.profiles.raw["waste"]["collection"]
        if local.hour != cfg["hour"] or local.minute >= dt_s / 60:
            return False
        day = local.toordinal() + sum(map(ord, b.device.id)) % cfg["every_days"]
        if day % cfg["every_days"] == 0:
            return self._round(b, day // cfg["every_days"], cfg) == "on_time"
        if (day + 1) % cfg["every_days"] == 0:
            return self._round(b, (day + 1) // cfg["every_days"], cfg) == "early"
        return False

    def _round(self, b: VirtualBin, round_no: int, cfg: dict) -> str:
        """How a bin's collection round goes: early (a day before), missed, or on time."""
        r = random.Random(f"{self.seed}:{b.device.id}:round{round_no}").random()
        if r < cfg["early_share"]:
            return "early"
        if r < cfg["early_share"] + cfg.get("missed_share", 0.0):
            return "missed"
        return "on_time"

    # --- faults --------------------------------------------------------------------

    def _apply_faults(self, ts: int) -> None:
        for i, fault in enumerate(self.faults):
            phase = self._fault_phase[i]
            modelled = [d for d in fault.devices if d not in self.external]
            if phase == 0 and ts >= fault.start:
                for dev_id in modelled:
                    self._begin(fault, self.devices[dev_id], ts)
                phase = 1 if fault.end is not None else 2
            if phase == 1 and ts >= fault.end:
                for dev_id in modelled:
                    self._finish(fault, self.devices[dev_id], ts)
                phase = 2
            self._fault_phase[i] = phase

    def _begin(self, fault: Fault, dev: VirtualDevice, ts: int) -> None:
        ledger, dev_id = self.ledger, dev.device.id
        if fault.kind == "outage":
            dev.online = False
            ledger.add(dev_id, ts, outages=1)
        elif fault.kind == "dead_sensor":
            dev.dead = True
        elif fault.kind in ("reboot", "unsynced_clock"):
            self._reboot(dev, ts, synced=fault.kind == "reboot")
        elif fault.kind == "counter_reset" and isinstance(dev, (VirtualMeter, VirtualWaterMeter)):
            dev.counter = EnergyCounter(0)
            ledger.add(dev_id, ts, counter_resets=1)
        elif fault.kind == "duplicate":
            dev.payloads_to_repeat += fault.count
        elif fault.kind == "garbage":
            self._garbage.append((dev, fault.count))
            ledger.add(dev_id, ts, garbage=fault.count)

    def _reboot(self, dev: VirtualDevice, ts: int, synced: bool) -> None:
        dev.reboot(ts, synced=synced)
        self.state[dev.device.id].boot = dev.boot
        self.status_out.append((topic(self.prefix, dev.device.id, "status"),
                                encode_status(True, dev.boot, FIRMWARE, "soft")))
        self.ledger.add(dev.device.id, ts, reboots=1)

    def _finish(self, fault: Fault, dev: VirtualDevice, ts: int) -> None:
        if fault.kind == "outage":
            dev.online = True
        elif fault.kind == "dead_sensor":
            dev.dead = False
        elif fault.kind == "unsynced_clock":
            dropped = dev.buffer.dropped
            dev.sync_clock(ts)
            if dev.buffer.dropped != dropped:
                self.ledger.add(dev.device.id, ts, dropped=dev.buffer.dropped - dropped)

    # --- commands ------------------------------------------------------------------

    def command(self, device_id: str, payload: bytes) -> tuple[str, bytes] | None:
        """Run a command sent to {prefix}/{device}/cmd through the firmware's CommandHandler;
        returns the (topic, ack) to publish, or None for a device this fleet does not have."""
        dev = self.devices.get(device_id)
        if dev is None or device_id in self.external:
            return None  # not ours to answer (a virtual board answers for itself)
        if dev.commands is None:
            dev.commands = CommandHandler(self._handlers(dev))
        return topic(self.prefix, device_id, "cmd/ack"), dev.commands.handle(payload)

    def _handlers(self, dev: VirtualDevice) -> dict:
        def set_interval(args: dict) -> dict:
            seconds = interval_arg(args)
            if seconds % self.interval_s:
                raise CommandError(f"the simulated fleet steps every {self.interval_s} s: use a multiple of it")
            dev.every = seconds // self.interval_s
            dev.cycles = 1  # as the firmware reschedules: next reading one new period from now
            return {"interval_s": seconds}

        def reboot(args: dict) -> dict:
            if dev not in self._reboots:
                self._reboots.append(dev)
            return {"rebooting": True}

        def tare(args: dict) -> dict:
            if not isinstance(dev, VirtualBin) or not dev.measures_weight:
                raise CommandError("no sensor here can tare — it applies to the load cell (hx711)")
            dev.tare_g = dev.raw_g()
            return {"tare_g": round(dev.tare_g)}

        # calibrate and ota are refused by the handler: "... is not available on this device"
        return {"set_interval": set_interval, "reboot": reboot, "tare": tare}

    # --- output ---------------------------------------------------------------------

    def payloads(self, batch: int) -> Iterator[tuple[str, bytes]]:
        """(topic, payload) for every online device with at least `batch` buffered readings,
        then the garbage payloads that faults asked for."""
        for dev in self.devices.values():
            if dev.online and dev.buffer.depth >= batch:
                yield from self._drain(dev)
        while self._health:
            yield self._health.pop(0)
        while self._garbage:
            dev, n = self._garbage.pop(0)
            t = topic(self.prefix, dev.device.id, "telemetry")
            for payload in garbage_payloads(dev.device.id, dev.boot, n):
                self.sent["garbage"] += 1
                yield t, payload

    def flush(self) -> Iterator[tuple[str, bytes]]:
        """(topic, payload) for every buffered reading of online devices (end of a run);
        readings still waiting for the clock stay."""
        waiting = -1
        while waiting:
            before = waiting
            yield from self.payloads(1)
            waiting = sum(d.buffer.depth for d in self.devices.values() if d.online)
            if waiting == before:
                return

    def _drain(self, dev: VirtualDevice) -> Iterator[tuple[str, bytes]]:
        t = topic(self.prefix, dev.device.id, "telemetry")
        meter = dev if isinstance(dev, (VirtualMeter, VirtualWaterMeter)) else None
        field, key = ("energy_wh", "wh") if isinstance(dev, VirtualMeter) else ("water_l", "litres")
        for payload, readings in dev.sendable():
            if meter is not None:
                for r in readings:
                    for ts, amount in meter.counted(r["ts"], r[field]):
                        self.ledger.add(dev.device.id, ts, **{key: amount})
            self.sent["payloads"] += 1
            yield t, payload
            if dev.payloads_to_repeat:
                dev.payloads_to_repeat -= 1
                self.sent["duplicates"] += 1
                self.ledger.add(dev.device.id, readings[0]["ts"], duplicates=1)
                yield t, payload


def load_state(path: Path | None) -> dict[str, NvsState]:
    """Boot counters and energy totals of a previous run (the fleet's NVS)."""
    if path is None or not path.exists():
        return {}
    return {k: NvsState(**v) for k, v in json.loads(path.read_text()).items()}


def save_state(path: Path | None, state: dict[str, NvsState]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({k: asdict(v) for k, v in state.items()}, sort_keys=True))
    tmp.replace(path)
