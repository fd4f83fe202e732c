"""Ledger stage: seals each territory's closed UTC days into its ledger chain (boucle.ledger)
and checks the sealed ones against the store.

A round, per territory:
- the chain itself is checked (links, digests): a broken chain is reported and nothing is
  appended to it;
- every closed day after the last sealed one (closed: `close_after_s` past the next UTC
  midnight; empty days included, so a day dropped whole shows) is sealed, oldest first;
- the sealed days of the last `lookback_days` are counted again; a day whose count moved,
  or every day when `audit` is set, is recomputed from the store. The same root: nothing to
  do. Another root, but the readings received by the day's sealing still make the sealed
  root (or do once whole batches stamped just before it, writes still in flight when the
  day was read, are left out): the rest are late readings, sealed as the day's next
  version. Otherwise the store no longer holds what was sealed (a reading changed,
  dropped, or the day replaced): a mismatch, reported with the sites whose roots differ,
  and not sealed over.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from itertools import combinations

from boucle import ledger
from boucle.ledger import LedgerEntry
from boucle.registry import Registry
from boucle.rollup import DAY, day_start
from boucle.storage import Store
from boucle.storage.ledger_days import Leaf, day_count, day_roots, first_reading_day, site_leaves

log = logging.getLogger("boucle.gateway.ledger")


@dataclass(frozen=True)
class Mismatch:
    """A territory's day whose stored readings (or ledger chain) no longer match its ledger."""

    territory: str
    day: int
    problem: str


@dataclass
class LedgerRound:
    sealed: list[LedgerEntry] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)


def ledger_round(store: Store, registry: Registry, now: float, close_after_s: int, lookback_days: int,
                 audit: bool = False, settle_s: float = 0.0) -> LedgerRound:
    """One round of the ledger stage over every territory (see the module docstring). An
    entry holds the readings received (the writer's clock) by its sealed_at, `settle_s`
    before `now`: a write stamped before that is committed by then, so that an entry and
    its time agree (BOUCLE_LEDGER_SETTLE_S)."""
    out = LedgerRound()
    closed_before = day_start(int(now) - close_after_s)  # days before it are closed
    for territory in registry.territories:
        _territory_round(store, registry, territory.id, now - settle_s, closed_before, lookback_days, audit, out)
    return out


def possibly_sealed_before(now: float, close_after_s: int, margin_s: float) -> int:
    """Readings stamped before this may be of a day the ledger has sealed, or seals within
    `margin_s` (which covers the sealer's settle time and its clock's difference)."""
    return day_start(int(now + margin_s) - close_after_s)


def _territory_round(store: Store, registry: Registry, territory: str, now: float, closed_before: int,
                     lookback_days: int, audit: bool, out: LedgerRound) -> None:
    chain = store.ledger(territory)
    problems = ledger.chain_problems(chain)
    if problems:
        out.mismatches += [Mismatch(territory, -1, p) for p in problems]
        return
    current = ledger.latest(chain)
    for day in sorted(current):
        if day < closed_before - lookback_days * DAY:
            continue
        entry = current[day]
        if not audit and day_count(store, registry, territory, day) == entry.count:
            continue
        roots, sealed_then, _ = day_roots(store, registry, territory, day, entry.sealed_at)
        if ledger.day_root(roots) == entry.root:
            continue
        if ledger.day_root(sealed_then) == entry.root or _in_flight(store, registry, entry, sealed_then):
            _, by_now, checks = day_roots(store, registry, territory, day, now)
            if ledger.day_root(by_now) == entry.root:
                continue  # the late readings came after `now`: the next round seals them
            if not _append(store, chain, ledger.seal(territory, day, by_now, chain, now, checks), out):
                return
            continue
        out.mismatches.append(Mismatch(territory, day, _differences(entry, roots)))
    start = max(current) + DAY if current else first_reading_day(store, registry, territory)
    if start is None:
        return
    for day in range(start, closed_before, DAY):
        # What was received by `now`, the entry's sealed_at: a reading the writer stores
        # while this round reads the day is a late one (the next version), not one the
        # entry holds without its time saying so (which the next round took for tampering).
        _, by_now, checks = day_roots(store, registry, territory, day, now)
        if not _append(store, chain, ledger.seal(territory, day, by_now, chain, now, checks), out):
            return


IN_FLIGHT_S = 3600.0
"""How long before an entry's sealed_at a write may have been stamped and still be in flight
when the day was read (docs/ledger.md, "False alarms")."""
IN_FLIGHT_BATCHES = 16
"""The most batches (distinct `received` times) of a site the in-flight check considers,
the newest before sealed_at; at most IN_FLIGHT_AT_ONCE of them left out at once."""
IN_FLIGHT_AT_ONCE = 3


def _in_flight(store: Store, registry: Registry, entry: LedgerEntry, sealed_then: list[ledger.SiteRoot]) -> bool:
    """Whether the sites whose readings received by sealed_at do not make their sealed root
    do once some batches stamped just before sealed_at are left out: writes still in flight
    when the round read the day (longer than the settle time). Those readings are then late
    ones, not a change to what was sealed."""
    sealed = {s.site: s for s in entry.sites}
    then = {s.site: s for s in sealed_then if s.count}
    for site in sealed.keys() | then.keys():
        if (sealed.get(site) and sealed[site].root) == (then.get(site) and then[site].root):
            continue
        want = sealed.get(site, ledger.SiteRoot(site, ledger.EMPTY_ROOT, 0))
        if not in_flight_explains(site_leaves(store, registry, entry.territory, entry.day, site), want,
                                  entry.sealed_at):
            return False
    return True


def in_flight_explains(devices: dict[str, list[Leaf]], sealed: ledger.SiteRoot, sealed_at: float) -> bool:
    """Whether leaving out up to IN_FLIGHT_AT_ONCE whole batches (readings sharing one
    `received`, the write's stamp) received in the IN_FLIGHT_S before `sealed_at` makes the
    site's readings received by `sealed_at` its sealed root. Only whole batches, and only
    as many readings as the sealed count asks: a reading changed or dropped is not
    explained away."""
    early = {d: [leaf for leaf in leaves if leaf[2] <= sealed_at] for d, leaves in devices.items()}
    extra = sum(map(len, early.values())) - sealed.count
    if extra <= 0:
        return False
    sizes: dict[float, int] = {}
    for leaves in early.values():
        for _, _, got, _ in leaves:
            if got > sealed_at - IN_FLIGHT_S:
                sizes[got] = sizes.get(got, 0) + 1
    batches = sorted(sizes, reverse=True)[:IN_FLIGHT_BATCHES]
    for n in range(1, IN_FLIGHT_AT_ONCE + 1):
        for left_out in combinations(batches, n):
            if sum(sizes[b] for b in left_out) != extra:
                continue
            out = set(left_out)
            kept = {d: [h for _, h, got, _ in leaves if got not in out] for d, leaves in early.items()}
            if ledger.site_root(sealed.site, {d: (ledger.merkle_root(h), len(h)) for d, h in kept.items()}) == sealed:
                return True
    return False


def _append(store: Store, chain: list[LedgerEntry], entry: LedgerEntry, out: LedgerRound) -> bool:
    if not store.append_ledger(entry):
        log.info("ledger of %s: entry %d sealed by another process meanwhile", entry.territory, entry.seq)
        return False
    chain.append(entry)
    out.sealed.append(entry)
    return True


def _differences(entry: LedgerEntry, roots: list[ledger.SiteRoot]) -> str:
    """Which sites of a sealed day the store no longer matches, in words."""
    sealed = {s.site: s for s in entry.sites}
    now = {s.site: s for s in roots if s.count}
    changed = sorted(site for site in sealed.keys() | now.keys()
                     if (sealed.get(site) and sealed[site].root) != (now.get(site) and now[site].root))
    parts = []
    for site in changed:
        was, has = sealed.get(site), now.get(site)
        parts.append(f"{site}: {was.count if was else 0} readings sealed, {has.count if has else 0} stored"
                     + (", same count but other readings" if was and has and was.count == has.count else ""))
    return (f"day v{entry.version} no longer matches the store ({'; '.join(parts)})" if parts
            else f"day v{entry.version} no longer matches the store")
