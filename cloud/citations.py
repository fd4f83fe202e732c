"""Indicators that cite their data: the UTC days of the territories a value was computed
from, each with its current ledger digest (boucle.ledger, docs/ledger.md)."""

from __future__ import annotations

from datetime import UTC, datetime

from boucle import ledger
from boucle.registry import Registry
from boucle.rollup import DAY, day_start
from boucle.storage import Store
from cloud.indicators import Period, Scope
from cloud.models import LedgerCitation


def iso_day(day: int) -> str:
    return datetime.fromtimestamp(day, UTC).strftime("%Y-%m-%d")


def scope_territories(registry: Registry, scope: Scope) -> list[str]:
    if scope.kind == "site":
        return sorted({s.territory for s in map(registry.site, scope.ids) if s is not None})
    return list(scope.ids)


MAX_CITED_DAYS = 400
"""Longer periods cite no days (their values say so in a caveat): the territory's ledger
endpoint lists them."""


def citations(store: Store, registry: Registry, scope: Scope, period: Period) -> list[LedgerCitation]:
    """The UTC days of the scope's territories a value over `period` rests on, with their
    current ledger digests (None for a day not sealed yet); none past MAX_CITED_DAYS."""
    out: list[LedgerCitation] = []
    if (period.end - day_start(period.start)) / DAY > MAX_CITED_DAYS:
        return out
    for territory in scope_territories(registry, scope):
        sealed = ledger.latest(store.ledger(territory))
        for day in range(day_start(period.start), period.end, DAY):
            e = sealed.get(day)
            roots = ({s.site: s.root.hex() for s in e.sites if s.site in scope.ids}
                     if e is not None and scope.kind == "site" else None)
            out.append(LedgerCitation(territory=territory, day=iso_day(day), version=e.version if e else None,
                                      digest=e.digest.hex() if e else None, site_roots=roots))
    return out
