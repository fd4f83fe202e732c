"""One indicator computation: the scope resolved against the registry, its frames loaded once.

`Context.load` places the scope's devices (a device that moved counts at the site it was
at: boucle.registry `moves`), reads their frames, then the meters' profiles the requested
indicators need (both with `frames.FrameLoader`). From then on the formulas
read only the Context: they never touch the store, and nothing in them depends on where
the data came from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import cached_property, lru_cache
from zoneinfo import ZoneInfo

import numpy as np

from boucle.registry import Device, Registry, Site, Territory
from boucle.rollup import MWH_PER_WH, span_edges
from boucle.storage import Store
from cloud.indicators.calendar import open_intervals, open_shares, years_in
from cloud.indicators.frames import ComputedDays, Frame, FrameLoader, Placement
from cloud.indicators.references import References
from cloud.indicators.values import Period, Scope

Profiles = Callable[["Context"], Iterable[Device]]
"""Which meters' profiles (energy per interval) an indicator reads."""


class UnknownScope(LookupError):
    """A scope naming a site or territory that the registry does not have."""


def placements(registry: Registry, sites: Sequence[Site], period: Period) -> list[Placement]:
    """The devices at these sites during the period, one placement per (device, site), in
    registry order; a stay's span is clipped to the period."""
    wanted = {s.id for s in sites}
    out = []
    for device in registry.devices:
        spans: dict[str, list[tuple[int, int]]] = {}
        for site, since, until in device.tenures():
            lo, hi = max(since, period.start), min(until, period.end)
            if site in wanted and lo < hi:
                spans.setdefault(site, []).append((lo, hi))
        for site, mine in spans.items():
            placed = device if site == device.site else device.model_copy(update={"site": site})
            out.append(Placement(placed, tuple(mine)))
    return out


class Context:
    """The scope of one computation, its placed devices, and their frames."""

    def __init__(self, registry: Registry, scope: Scope, period: Period, references: References,
                 frames: dict[tuple[str, str], Frame]):
        self.registry = registry
        self.scope = scope
        self.period = period
        self.references = references
        self.territories, self.sites = resolve(registry, scope)
        self.frames = frames
        self.devices = [f.device for f in frames.values()]
        """The placed devices (a device that moved appears once per site it was at)."""
        self._frame_of = {id(f.device): f for f in frames.values()}
        self.memo: dict[object, object] = {}
        """Intermediate results shared by several indicators (site balances...)."""

    @classmethod
    def load(cls, store: Store, registry: Registry, scope: Scope, period: Period, references: References,
             profiles: Sequence[Profiles] = (), raw: bool = False, computed: ComputedDays | None = None) -> Context:
        """Read what a computation needs: every placement's frame, and the profiles of the
        meters `profiles` name (asked once the totals are known: a site's load meter is a
        whole-site meter or a machine by its energy). `raw`: from raw readings only;
        `computed`: days already computed from raw readings (a series' earlier steps)."""
        _, sites = resolve(registry, scope)
        loader = FrameLoader(store, period, raw, computed)
        frames = loader.frames(placements(registry, sites, period))
        ctx = cls(registry, scope, period, references, frames)
        wanted = {(d.id, d.site) for need in profiles for d in need(ctx)}
        if wanted:
            loader.add_slots(frames, wanted)
        return ctx

    def frame(self, device: Device) -> Frame:
        """A placed device's frame (the formulas pass the Context's own device objects)."""
        found = self._frame_of.get(id(device))
        return found if found is not None else self.frames[device.id, device.site]

    # --- devices ---------------------------------------------------------------------------

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

    # --- energy ----------------------------------------------------------------------------

    def wh(self, device: Device) -> float:
        """A meter's accepted energy over the period (Wh)."""
        return self.frame(device).amount / MWH_PER_WH

    def energy_wh(self, devices: list[Device]) -> float:
        return sum(self.frame(d).amount for d in devices) / MWH_PER_WH

    @property
    def grid(self) -> np.ndarray:
        """Edges of the period's intervals: its start, each UTC quarter-hour inside, its end."""
        return span_edges(self.period.start, self.period.end)

    @cached_property
    def interval_seconds(self) -> np.ndarray:
        seconds = np.diff(self.grid).astype(np.float64)
        seconds.flags.writeable = False
        return seconds

    @cached_property
    def interval_s(self) -> float | None:
        """The intervals' length when they are all the same (a period on quarter-hours), else None."""
        seconds = self.interval_seconds
        return float(seconds[0]) if seconds.size and (seconds == seconds[0]).all() else None

    def slots_wh(self, device: Device) -> np.ndarray:
        """A meter's energy per interval of the grid (Wh; 0 outside its stay). Read-only."""
        wh = self.frame(device).slots_wh
        if wh is None:
            raise LookupError(f"{device.id}: its profile was not loaded (name it in the indicator's profiles)")
        return wh

    def buckets(self, devices: list[Device]) -> tuple[np.ndarray, np.ndarray]:
        """(Wh per grid interval summed over `devices`, mask of the intervals where every one
        of them present then has readings around it, and at least one is present).

        Read-only arrays (shared with other callers)."""
        if len(devices) == 1 and self.frame(devices[0]).present.all():  # as loaded: no copy
            f = self.frame(devices[0])
            return f.slots_wh, f.covered
        key = ("buckets", tuple((d.id, d.site) for d in devices))
        if key not in self.memo:
            n = self.grid.size - 1
            total = np.zeros(n)
            covered = np.ones(n, dtype=bool)
            present = np.zeros(n, dtype=bool)
            for d in devices:
                f = self.frame(d)
                total += self.slots_wh(d)
                covered &= f.covered | ~f.present
                present |= f.present
            covered &= present
            total.flags.writeable = False
            covered.flags.writeable = False
            self.memo[key] = (total, covered)
        return self.memo[key]  # type: ignore[return-value]

    def open_fraction(self, site: Site) -> np.ndarray:
        """Per grid interval, the share of it inside the site's opening hours."""
        return open_shares(site.opening_hours, self.site_timezone(site), self.period.start, self.period.end)

    def open_intervals(self, site: Site) -> tuple[tuple[int, int], ...]:
        return open_intervals(site.opening_hours, self.site_timezone(site), self.period.start, self.period.end)

    # --- readings ---------------------------------------------------------------------------

    def received(self, device: Device) -> int:
        return self.frame(device).received

    def expected(self, device: Device) -> float:
        """Readings expected from a placement: its time in the period ÷ its interval."""
        return self._counted(device)[1]

    @cached_property
    def _counts(self) -> dict[int, tuple[float, float]]:
        out = {}
        for f in self.frames.values():
            e = f.placement.seconds / f.device.interval_s
            out[id(f.device)] = (min(f.received, e), e)
        return out

    def _counted(self, device: Device) -> tuple[float, float]:
        """A placed device's (readings received, capped at expected; expected)."""
        found = self._counts.get(id(device))
        if found is None:
            f = self.frame(device)
            e = f.placement.seconds / device.interval_s
            found = (min(f.received, e), e)
        return found

    def coverage(self, devices: list[Device]) -> float:
        """Readings received ÷ expected over the period (each placement capped at its expected)."""
        if len(devices) == 1:  # data.coverage asks for each device: no key to build
            received, expected = self._counted(devices[0])
            return min(1.0, received / expected) if expected else 0.0
        key = ("coverage", tuple(map(id, devices)))
        if key not in self.memo:
            pairs = [self._counted(d) for d in devices]
            received, expected = sum(p[0] for p in pairs), sum(p[1] for p in pairs)
            self.memo[key] = min(1.0, received / expected) if expected else 0.0
        return self.memo[key]  # type: ignore[return-value]

    # --- calendars ---------------------------------------------------------------------------

    @cached_property
    def years(self) -> float:
        """The period in calendar years of the scope's zone (for annualised indicators)."""
        return years_in(self.period.start, self.period.end, self.timezone)

    @cached_property
    def timezone(self) -> ZoneInfo:
        """The time zone of the scope (its first territory's): calendars and opening hours."""
        return ZoneInfo(self.territories[0].timezone if self.territories else "UTC")

    def site_timezone(self, site: Site) -> ZoneInfo:
        territory = self.registry.territory(site.territory)
        return _zone(territory.timezone if territory else "UTC")

    @property
    def population(self) -> int | None:
        """Inhabitants of the scope; None for sites (per-capita figures are territorial)."""
        if self.scope.kind == "site":
            return None
        return sum(t.population for t in self.territories)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


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
