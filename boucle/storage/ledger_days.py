"""A territory's stored readings of a UTC day, as the ledger hashes them (boucle.ledger):
the gateway seals and audits days with these, the API proves readings with them.

A reading belongs to the territory of the site its device was at when it was taken
(boucle.registry.Device.site_at), like everything else in Boucle.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from boucle.ledger import (
    DeviceCheck,
    SiteRoot,
    SiteTree,
    leaf_hash,
    merkle_root,
    reading_bytes,
    site_root,
    site_tree,
)
from boucle.protocol import INTEGER_FIELDS, MEASUREMENT_FIELDS
from boucle.registry import Registry
from boucle.rollup import DAY
from boucle.storage import RECEIVED, SIG_CHECKED, Store, StoredReading

FIELDS = (*MEASUREMENT_FIELDS, RECEIVED, SIG_CHECKED)
"""What the ledger reads of a stored reading."""
_NOT_HASHED = frozenset((RECEIVED, SIG_CHECKED))
"""Read beside a reading's measurements, not part of its leaf: the gateway's, not the sensor's."""


@dataclass(frozen=True)
class Stay:
    """A device at a site of the territory for [start, end) of the day."""

    device: str
    site: str
    start: int
    end: int


def stays(registry: Registry, territory: str, day: int, sites: set[str] | None = None) -> Iterator[Stay]:
    """The devices' stays at the territory's sites (or at `sites` among them) during the day."""
    wanted = {s.id for s in registry.sites_of(territory)}
    if sites is not None:
        wanted &= sites
    for device in registry.devices:
        for site, since, until in device.tenures():
            lo, hi = max(since, day), min(until, day + DAY)
            if site in wanted and lo < hi:
                yield Stay(device.id, site, lo, hi)


@dataclass(frozen=True)
class DayReadings:
    """Readings of a territory's day (an export's, a site's for a proof): per site, per
    device, their ledger bytes."""

    territory: str
    day: int
    sites: dict[str, dict[str, list[bytes]]]

    @classmethod
    def of(cls, territory: str, day: int, rows: Iterable[LedgerReading]) -> DayReadings:
        """Rows (ledger_readings, or an export's) as the ledger hashes them."""
        out: dict[str, dict[str, list[bytes]]] = {}
        for row in rows:
            out.setdefault(row.site, {}).setdefault(row.device, []).append(row.ledger_bytes())
        return cls(territory, day, out)

    def trees(self) -> dict[str, SiteTree]:
        return {site: site_tree(site, devices) for site, devices in self.sites.items()}

    def roots(self) -> list[SiteRoot]:
        return [tree.root() for tree in self.trees().values()]


@dataclass(frozen=True)
class LedgerReading:
    """A stored reading of the day, as exported: where and when, and its measurements."""

    device: str
    site: str
    ts: int
    boot: int
    seq: int
    values: dict[str, float | int]
    received: float
    checked: bool = False
    """Whether the gateway checked its signature (SIG_CHECKED): the store's word, per reading."""

    def ledger_bytes(self) -> bytes:
        return reading_bytes(self.device, self.ts, self.boot, self.seq, self.values, INTEGER_FIELDS)


def ledger_readings(store: Store, registry: Registry, territory: str, day: int, sites: set[str] | None = None
             ) -> list[LedgerReading]:
    """The territory's stored readings of the UTC day starting at `day` (of `sites` only when
    given), by site stay, device and time."""
    out = []
    for stay in stays(registry, territory, day, sites):
        for r in store.readings(stay.device, stay.start, stay.end, FIELDS):
            if r.ts >= stay.start:  # not the baseline before it
                values = {k: v for k, v in r.values.items() if k not in _NOT_HASHED and v is not None}
                out.append(LedgerReading(stay.device, stay.site, r.ts, r.boot, r.seq, values,
                                         float(r.values[RECEIVED] or 0.0), bool(r.values.get(SIG_CHECKED))))
    return out


Leaf = tuple[tuple[int, int, int], bytes, float, bool]
"""A stored reading in a day tree: its (ts, boot, seq), leaf hash, `received`, and whether
its signature was checked (SIG_CHECKED)."""


def stored_leaves(device: str, readings: Iterable[StoredReading], start: int) -> list[Leaf]:
    """The leaves of a device's stored readings (`fields`: FIELDS) from `start` on."""
    out = []
    for r in readings:
        if r.ts >= start:  # not the baseline before it
            values = {k: v for k, v in r.values.items() if k not in _NOT_HASHED}
            out.append(((r.ts, r.boot, r.seq),
                        leaf_hash(reading_bytes(device, r.ts, r.boot, r.seq, values, INTEGER_FIELDS)),
                        float(r.values[RECEIVED] or 0.0), bool(r.values.get(SIG_CHECKED))))
    return out


def _device_leaves(store: Store, registry: Registry, territory: str, day: int, sites: set[str] | None = None
                   ) -> Iterator[tuple[str, str, list[Leaf]]]:
    """(site, device, its sorted leaves) of the territory's day, a device at a time."""
    stays_by: dict[tuple[str, str], list[Stay]] = {}
    for stay in stays(registry, territory, day, sites):
        stays_by.setdefault((stay.site, stay.device), []).append(stay)
    for (site, device), its in stays_by.items():
        yield site, device, sorted(leaf for stay in its
                                   for leaf in stored_leaves(device, store.readings(device, stay.start, stay.end,
                                                                                    FIELDS), stay.start))


def site_leaves(store: Store, registry: Registry, territory: str, day: int, site: str) -> dict[str, list[Leaf]]:
    """A site's stored readings of the day as leaves, by device (for the audit's in-flight check)."""
    return {device: leaves for _, device, leaves in _device_leaves(store, registry, territory, day, {site})}


class DayRoots(NamedTuple):
    """A territory's stored day as the ledger seals it (day_roots)."""

    every: list[SiteRoot]
    """The site roots of every stored reading of the day."""
    received: list[SiteRoot]
    """Those of the readings received by the time asked for."""
    checks: list[DeviceCheck]
    """Per device (and site), how many of the latter had their signature checked."""


def day_roots(store: Store, registry: Registry, territory: str, day: int, received_by: float | None = None
              ) -> DayRoots:
    """The site roots of the territory's stored readings of the UTC day starting at `day`,
    and those of the readings among them received by `received_by` (the same without it),
    with their signature checks. A device at a time: what stays in memory is a root per
    device, not the readings."""
    every: dict[str, dict[str, tuple[bytes, int]]] = {}
    early: dict[str, dict[str, tuple[bytes, int]]] = {}
    checks = []
    for site, device, leaves in _device_leaves(store, registry, territory, day):
        hashes = [leaf[1] for leaf in leaves]
        every.setdefault(site, {})[device] = root = (merkle_root(hashes), len(hashes))
        if received_by is not None:
            leaves = [leaf for leaf in leaves if leaf[2] <= received_by]
            if len(leaves) < len(hashes):
                hashes = [leaf[1] for leaf in leaves]
                root = (merkle_root(hashes), len(hashes))
        early.setdefault(site, {})[device] = root
        checks.append(DeviceCheck(site, device, len(leaves), sum(leaf[3] for leaf in leaves)))
    return DayRoots([site_root(s, devices) for s, devices in every.items()],
                    [site_root(s, devices) for s, devices in early.items()], checks)


def day_count(store: Store, registry: Registry, territory: str, day: int) -> int:
    """How many readings the store holds of the territory's day (cheap: counted by the store
    for devices there all day)."""
    total, partial = 0, []
    whole = []
    for stay in stays(registry, territory, day):
        (whole if (stay.start, stay.end) == (day, day + DAY) else partial).append(stay)
    if whole:
        total += sum(store.reading_counts([s.device for s in whole], day, day + DAY).values())
    for stay in partial:
        total += store.reading_counts([stay.device], stay.start, stay.end)[stay.device]
    return total


def first_reading_day(store: Store, registry: Registry, territory: str) -> int | None:
    """The UTC day of the territory's devices' earliest stored reading (any site), if any."""
    sites = {s.id for s in registry.sites_of(territory)}
    firsts = [store.next_reading_ts(d.id, -1) for d in registry.devices
              if any(site in sites for site, _, _ in d.tenures())]
    found = [t for t in firsts if t is not None]
    return min(found) - min(found) % DAY if found else None
