"""One indicator computation: the scope resolved against the registry, data loaded once."""

from __future__ import annotations

from functools import cached_property, lru_cache
from zoneinfo import ZoneInfo

import numpy as np

from boucle.accounting import CounterDeltas, WasteEvents, counter_deltas, waste_events
from boucle.registry import Device, Registry, Site, Territory
from boucle.storage import Store
from cloud.indicators.calendar import open_intervals, open_shares, years_in
from cloud.indicators.references import References
from cloud.indicators.source import Source
from cloud.indicators.values import Period, Scope

QUARTER_HOUR = 900


class UnknownScope(LookupError):
    """A scope naming a site or territory that the registry does not have."""


class DeviceEnergy:
    """A counter device over the period: its accepted deltas at its reading times.

    Built from 15-min slots (`slots`: Wh per interval of the period, a window in each), the
    buckets are the slots themselves and the per-point arrays are made only when asked for.
    """

    def __init__(self, device: Device, times: np.ndarray | None, deltas: CounterDeltas | None,
                 start: int, end: int, cumulative: np.ndarray | None = None,
                 slots: np.ndarray | None = None):
        self.device, self.start, self.end = device, start, end
        self.slots = slots
        self._times = times
        self._deltas = deltas
        self._cumulative = cumulative
        self._times_f: np.ndarray | None = None
        self._buckets: dict[int, np.ndarray] = {}
        if slots is not None:
            self._buckets[QUARTER_HOUR] = slots

    @classmethod
    def from_slots(cls, device: Device, start: int, end: int, slots: np.ndarray,
                   cumulative: np.ndarray | None = None) -> DeviceEnergy:
        """A meter whose energy is known per 15-min interval of [start, end) (rollups: the
        deltas were checked at ingest)."""
        return cls(device, None, None, start, end, cumulative, slots)

    @property
    def times(self) -> np.ndarray:
        if self._times is None:
            self._times = bucket_edges(self.start, self.end, QUARTER_HOUR)
        return self._times

    @property
    def deltas(self) -> CounterDeltas:
        if self._deltas is None:
            cum = self._cum()
            deltas = np.diff(cum, prepend=cum[:1]) if cum.size else cum
            self._deltas = CounterDeltas(deltas, deltas > 0, 0, 0)
        return self._deltas

    @property
    def total_wh(self) -> float:
        if self._deltas is None and self._cumulative is not None:  # a rollup: its last point
            return float(self._cumulative[-1]) if self._cumulative.size else 0.0
        return self.deltas.total_wh

    def cumulative_at(self, instants: np.ndarray) -> np.ndarray:
        """Accepted energy (Wh) counted up to each instant, from the device's first reading.

        Between readings energy accrues linearly (a delta is spread over its Δt); before the
        first reading and after the last one it stays flat (no extrapolation).
        """
        if self.times.size == 0:
            return np.zeros(np.shape(instants))
        if self._times_f is None:
            self._times_f = self.times.astype(np.float64)
        return np.interp(np.asarray(instants, dtype=np.float64), self._times_f, self._cum())

    def buckets_wh(self, step_s: int = QUARTER_HOUR) -> np.ndarray:
        """Energy per step-long interval of the period (the last one may be shorter)."""
        if step_s not in self._buckets:
            edges = bucket_edges(self.start, self.end, step_s)
            if self.times.size == edges.size and np.array_equal(self.times, edges):
                # points on the interval edges already (15-min windows): no interpolation
                self._buckets[step_s] = np.diff(self._cum())
            else:
                self._buckets[step_s] = np.diff(self.cumulative_at(edges))
        return self._buckets[step_s]

    def _cum(self) -> np.ndarray:
        if self._cumulative is None:
            if self._deltas is None:  # from slots
                self._cumulative = np.concatenate([[0.0], np.cumsum(self.slots)])
            else:
                self._cumulative = np.cumsum(self._deltas.deltas_wh)
        return self._cumulative

    def covered(self, step_s: int = QUARTER_HOUR) -> np.ndarray:
        """Per interval: whether the device has readings at or beyond both of its ends.

        The last interval of a period usually is not: readings at or after the end are not
        loaded, so its energy is known only up to the last reading."""
        edges = bucket_edges(self.start, self.end, step_s)
        if self.slots is not None:
            return np.ones(edges.size - 1, dtype=bool)
        if self.times.size < 2:
            return np.zeros(edges.size - 1, dtype=bool)
        return (edges[:-1] >= self.times[0]) & (edges[1:] <= self.times[-1])


@lru_cache(maxsize=16)
def _all_covered(n: int) -> np.ndarray:
    covered = np.ones(n, dtype=bool)
    covered.flags.writeable = False
    return covered


@lru_cache(maxsize=16)
def bucket_edges(start: int, end: int, step_s: int) -> np.ndarray:
    """start, start + step, ..., end (read-only: shared between callers)."""
    edges = np.append(np.arange(start, end, step_s, dtype=np.int64), end)
    edges.flags.writeable = False
    return edges


class Context:
    """The scope of one computation, its devices, and their data (each loaded once)."""

    def __init__(self, store: Store, registry: Registry, scope: Scope, period: Period,
                 references: References, source: Source | None = None):
        self.registry = registry
        self.scope = scope
        self.period = period
        self.references = references
        self.source = source or Source(store, period)
        self.territories, self.sites = resolve(registry, scope)
        site_ids = {s.id for s in self.sites}
        self.devices = [d for d in registry.devices if d.site in site_ids]
        self._energy: dict[str, DeviceEnergy] = {}
        self._profile: dict[str, DeviceEnergy] = {}
        self._waste: dict[str, WasteEvents] = {}
        self.memo: dict[str, object] = {}
        """Intermediate results shared by several indicators (site balances...)."""

    def energy_devices(self, channel: str, sites: list[Site] | None = None) -> list[Device]:
        """The scope's meters of a channel (of `sites` only, when given), in registry order."""
        if sites is None:
            return self._meters_by_channel.get(channel, [])
        if len(sites) == 1:
            return self._meters_by_site.get((sites[0].id, channel), [])
        ids = {s.id for s in sites}
        return [d for d in self._meters_by_channel.get(channel, []) if d.site in ids]

    @cached_property
    def _meters_by_channel(self) -> dict[str, list[Device]]:
        out: dict[str, list[Device]] = {}
        for d in self.devices:
            if d.kind == "energy" and d.channel:
                out.setdefault(d.channel, []).append(d)
        return out

    @cached_property
    def _meters_by_site(self) -> dict[tuple[str, str], list[Device]]:
        out: dict[tuple[str, str], list[Device]] = {}
        for d in self.devices:
            if d.kind == "energy" and d.channel:
                out.setdefault((d.site, d.channel), []).append(d)
        return out

    def waste_devices(self) -> list[Device]:
        return [d for d in self.devices if d.kind == "waste"]

    def energy(self, device: Device) -> DeviceEnergy:
        """A meter's accepted energy over the period (exact totals; maybe at day resolution)."""
        if device.id not in self._energy:
            self._energy[device.id] = self._device_energy(device, self.source.series(device, self.period))
        return self._energy[device.id]

    def profile(self, device: Device) -> DeviceEnergy:
        """A meter's energy at 15-min resolution or finer (power per interval, opening hours)."""
        if device.id not in self._profile:
            series = self.source.series(device, self.period)
            self._profile[device.id] = (self._device_energy(device, series.refine()) if series.refine
                                        else self.energy(device))
        return self._profile[device.id]

    def prefetch_profiles(self, devices: list[Device]) -> None:
        """Say which meters' profiles are coming, so a rollup loader reads them in one query."""
        ids: dict[object, list[str]] = {}
        for d in devices:
            if d.id in self._profile:
                continue
            prefetch = getattr(self.source.series(d, self.period).refine, "prefetch", None)
            if prefetch is not None:
                ids.setdefault(prefetch, []).append(d.id)
        for prefetch, wanted in ids.items():
            prefetch(wanted)

    def _device_energy(self, device: Device, series) -> DeviceEnergy:
        if series.slots_wh is not None and series.times.size and series.times[0] == self.period.start \
                and series.slots_wh.size * QUARTER_HOUR == self.period.seconds:
            return DeviceEnergy.from_slots(device, self.period.start, self.period.end, series.slots_wh)
        times, values = series.field("energy_wh")
        if series.rollup:
            # rollups hold deltas already checked (rate, resets) at ingest: cumulative as is
            # (per-point deltas made only if asked for)
            cumulative = values - values[0] if values.size else values
            return DeviceEnergy(device, times, None, self.period.start, self.period.end, cumulative)
        counted = counter_deltas(values, times, device.rated_power_w)
        return DeviceEnergy(device, times, counted, self.period.start, self.period.end)

    def energy_wh(self, devices: list[Device]) -> float:
        return sum(self.energy(d).total_wh for d in devices)

    def buckets(self, devices: list[Device], step_s: int = QUARTER_HOUR) -> tuple[np.ndarray, np.ndarray]:
        """(Wh per interval summed over `devices`, mask of intervals every device covers).

        Read-only arrays (shared with the devices' profiles and other callers)."""
        key = ("buckets", step_s, tuple(d.id for d in devices))
        if key not in self.memo:
            n = bucket_edges(self.period.start, self.period.end, step_s).size - 1
            profiles = [self.profile(d) for d in devices]
            wh = [e.buckets_wh(step_s) for e in profiles]
            if len(wh) == 1:
                total = wh[0]
            else:
                total = np.zeros(n)
                for w in wh:
                    total += w
            if all(e.slots is not None for e in profiles) and step_s == QUARTER_HOUR:
                covered = _all_covered(n)  # a window in every slot of every device
            else:
                covered = np.ones(n, dtype=bool)
                for e in profiles:
                    covered &= e.covered(step_s)
                covered.flags.writeable = False
            total.flags.writeable = False
            self.memo[key] = (total, covered)
        return self.memo[key]  # type: ignore[return-value]

    @staticmethod
    def all_covered(covered: np.ndarray) -> bool:
        """Whether a mask from `buckets` is the shared all-True one (every slot of every device)."""
        return covered is _all_covered(covered.size)

    def open_fraction(self, site: Site) -> np.ndarray:
        """Per 15-min interval of the period, the share of it inside the site's opening hours."""
        return open_shares(site.opening_hours, self.site_timezone(site), self.period.start, self.period.end,
                           QUARTER_HOUR)

    @cached_property
    def years(self) -> float:
        """The period in calendar years of the scope's zone (for annualised indicators)."""
        return years_in(self.period.start, self.period.end, self.timezone)

    def open_intervals(self, site: Site) -> tuple[tuple[int, int], ...]:
        return open_intervals(site.opening_hours, self.site_timezone(site), self.period.start, self.period.end)

    def waste(self, device: Device) -> WasteEvents:
        if device.id not in self._waste:
            series = self.source.series(device, self.period)
            if series.waste is not None:
                self._waste[device.id] = series.waste
            else:
                self._waste[device.id] = waste_events(*series.field("weight_g"))
        return self._waste[device.id]

    def received(self, device: Device) -> int:
        return self.source.series(device, self.period).received

    def coverage(self, devices: list[Device]) -> float:
        """Readings received ÷ expected over the period (each device capped at its expected)."""
        if len(devices) == 1:  # data.coverage asks for each device: no key to build
            d = devices[0]
            e = self.period.seconds / d.interval_s
            return min(1.0, min(self.received(d), e) / e)
        key = ("coverage", tuple(d.id for d in devices))
        if key not in self.memo:
            expected = received = 0.0
            for d in devices:
                e = self.period.seconds / d.interval_s
                expected += e
                received += min(self.received(d), e)
            self.memo[key] = min(1.0, received / expected) if expected else 0.0
        return self.memo[key]  # type: ignore[return-value]

    @cached_property
    def timezone(self) -> ZoneInfo:
        """The time zone of the scope (its first territory's): calendars and opening hours."""
        return ZoneInfo(self.territories[0].timezone if self.territories else "UTC")

    def site_timezone(self, site: Site) -> ZoneInfo:
        territory = self.registry.territory(site.territory)
        return ZoneInfo(territory.timezone if territory else "UTC")

    @property
    def population(self) -> int | None:
        """Inhabitants of the scope; None for sites (per-capita figures are territorial)."""
        if self.scope.kind == "site":
            return None
        return sum(t.population for t in self.territories)


def resolve(registry: Registry, scope: Scope) -> tuple[list[Territory], list[Site]]:
    """Territories and sites of a scope; UnknownScope when an id is not in the registry."""
    if not scope.ids:
        raise UnknownScope(f"empty {scope.kind} scope: name at least one id")
    scope = Scope(scope.kind, tuple(dict.fromkeys(scope.ids)))  # a repeated id counts once
    if scope.kind == "site":
        sites = []
        for sid in scope.ids:
            site = registry.site(sid)
            if site is None:
                raise UnknownScope(f"unknown site {sid!r}")
            sites.append(site)
        territory_ids = list(dict.fromkeys(s.territory for s in sites))
        territories = [t for t in (registry.territory(i) for i in territory_ids) if t]
        return territories, sites
    if scope.kind in ("territory", "territories"):
        territories = []
        for tid in scope.ids:
            territory = registry.territory(tid)
            if territory is None:
                raise UnknownScope(f"unknown territory {tid!r}")
            territories.append(territory)
        ids = {t.id for t in territories}
        return territories, [s for s in registry.sites if s.territory in ids]
    raise UnknownScope(f"unknown scope kind {scope.kind!r}: use site, territory or territories")
