"""The simulated fleet: every registry device as a virtual device, stepped in event time.

`Fleet.step(ts)` advances every device to `ts` and queues its reading; `Fleet.payloads()`
hands out telemetry payloads built by the firmware encoder. No I/O here: publishing
and pacing live in simulator.run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from zoneinfo import ZoneInfo

from boucle_fw.accounting import EnergyCounter
from boucle_fw.buffer import ReadingBuffer
from boucle_fw.commands import CommandError, CommandHandler, interval_arg
from boucle_fw.protocol import DEFAULT_PREFIX, encode_health, encode_status, topic
from boucle_fw.signing import Signer

from boucle import kinds
from boucle.registry import Registry, parse_opening_hours
from simulator.devices import NvsState, VirtualCounterMeter, VirtualDevice, device_rng, local_time
from simulator.faults import Fault, garbage_payloads
from simulator.ledger import Ledger
from simulator.models import models
from simulator.profiles import Profiles, is_holiday

FIRMWARE = "sim-0.2.0"


class SiteGroup:
    """The devices of one site, as each kind's model sees them: a building load and a PV roof
    shared by its meters (simulator/models/)."""

    def __init__(self, site, territory, tz, devices: list[VirtualDevice]):
        self.site = site
        self.territory = territory
        self.tz = tz
        self.hours = parse_opening_hours(site.opening_hours)
        self.devices = devices
        self.open_now = False   # this step: open and not a holiday
        self.by_kind: dict[str, list[VirtualDevice]] = {}
        self.state: dict[str, dict] = {}  # each kind's model's own, kept across steps


class Fleet:
    """Virtual devices for a registry, deterministic for a seed."""

    def __init__(self, registry: Registry, profiles: Profiles, seed: int, ledger: Ledger,
                 state: dict[str, NvsState] | None = None, prefix: str = DEFAULT_PREFIX,
                 faults: list[Fault] | None = None, start_ts: int = 0, interval_s: int = 60,
                 external: frozenset[str] = frozenset(), keys: Mapping[str, bytes] | None = None):
        """`keys`: the device key store's keys (boucle.device_keys): those devices sign."""
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
        self.models = models()  # each kind's physical model, simulator/models/<kind>.py
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
                          "boot": saved.boot, "buffer": buffer, "boot_ts": start_ts,
                          "signer": Signer(keys[dev.id]) if keys and dev.id in keys else None}
                if dev.kind not in self.models:
                    raise ValueError(f"device {dev.id}: kind {dev.kind!r} has no simulator model "
                                     f"(SIMULATOR of boucle/kinds/{dev.kind}.py)")
                vd = self.models[dev.kind].virtual(self, dev, common, saved)
                # A device's own interval (registry) in whole fleet steps: 300 s -> every 5th step.
                vd.every = max(1, round(dev.interval_s / interval_s))
                group.devices.append(vd)
                self.devices[dev.id] = vd
            if group.devices:
                for vd in group.devices:
                    group.by_kind.setdefault(vd.device.kind, []).append(vd)
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
        for group in self.groups:
            local = local_time(ts, group.tz)
            today = group.hours.get(local.weekday())
            group.open_now = bool(today) and any(s <= local.time() < e for s, e in today) \
                and not is_holiday(self.profiles, local, group.site.kind)
            for kind, model in self.models.items():  # KINDS order
                if kind in group.by_kind:
                    model.step(self, group, group.by_kind[kind], ts, local, dt_s)

    def keep(self, dev: VirtualDevice, reading: dict | None, ts: int) -> None:
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
        elif fault.kind == "counter_reset" and kinds.meter(dev.device.kind) is not None:
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
            if not getattr(dev, "measures_weight", False):
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
        meter = kinds.meter(dev.device.kind) if isinstance(dev, VirtualCounterMeter) else None
        key = self.models[dev.device.kind].COUNTED
        for payload, readings in dev.sendable():
            if meter is not None:
                for r in readings:
                    for ts, amount in dev.counted(r["ts"], r[meter.counter]):
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
    return {k: NvsState.from_dict(v) for k, v in json.loads(path.read_text()).items()}


def save_state(path: Path | None, state: dict[str, NvsState]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({k: v.as_dict() for k, v in state.items()}, sort_keys=True))
    tmp.replace(path)
