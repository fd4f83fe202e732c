"""Ledger endpoints (docs/ledger.md): a territory's chain, a reading's Merkle proof, and the
export of a site's or territory's readings with their ledger, which `boucle verify`
checks offline. What a territory key gets of a site's readings is the site owner's
consent (cloud.consent_routes): without it, a site's readings are neither exported nor
proven to a territory key.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response

from boucle import ledger
from boucle.consent import current, downsample, shared_resolution
from boucle.protocol import MEASUREMENT_FIELDS
from boucle.registry import Registry
from boucle.rollup import DAY, day_start
from boucle.storage import Store
from boucle.storage.ledger_days import DayReadings, day_count, ledger_readings
from cloud.access import Budget, Context, Ctx, Who, site_or_404, territory_or_404
from cloud.budget import period_cost
from cloud.citations import scope_territories
from cloud.csv_export import csv_response
from cloud.indicator_routes import indicator_set
from cloud.indicators import Period, Scope
from cloud.models import LedgerOut, ProofOut
from cloud.params import FormatQuery, SiteId, TerritoryId, get_period
from cloud.problems import ApiProblem, invalid_parameter
from cloud.security import Principal

router = APIRouter(prefix="/v1", tags=["ledger"])
EXPORT_FORMAT = "boucle-export/1"
MAX_EXPORT_DAYS = 31
MAX_EXPORT_READINGS = 1_000_000
"""An export is built in memory: past this many stored readings, ask for fewer days or a site."""
DayPath = Annotated[str, Path(pattern=r"^\d{4}-\d{2}-\d{2}$", description="UTC day, YYYY-MM-DD.",
                              openapi_examples={"day": {"value": "2026-03-28"}})]


def parse_day(text: str) -> int:
    try:
        return int(datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).timestamp())
    except ValueError:
        raise invalid_parameter("day", f"day={text!r} is not a date like 2026-03-28") from None


def readings_resolution(ctx: Context, registry: Registry, who: Principal, site_id: str) -> int | None:
    """The resolution a caller sees a site's readings at (0: as stored), None for not at all:
    an admin and the site's owner (a site key) see them as stored, a territory key as the
    site's consent says."""
    if who.admin or site_id in who.sites:
        return 0
    site = registry.site(site_id)
    if site is not None and site.territory in who.territories:
        return shared_resolution(current(ctx.store.consents(), site_id))
    return None


@router.get("/territories/{territory_id}/ledger", response_model=LedgerOut,
            summary="A territory's ledger: its sealed days (all versions) and the chain's health")
def territory_ledger(territory_id: TerritoryId, ctx: Ctx, who: Who,
                     start: Annotated[str | None, Query(alias="from", max_length=40)] = None,
                     end: Annotated[str | None, Query(alias="to", max_length=40)] = None) -> LedgerOut:
    territory_or_404(ctx.registry, who, territory_id)
    return _ledger_out(ctx.store, territory_id, start, end)


@router.get("/sites/{site_id}/ledger", response_model=LedgerOut,
            summary="The ledger of a site's territory (for its owner to check the site's part)")
def site_ledger(site_id: SiteId, ctx: Ctx, who: Who,
                start: Annotated[str | None, Query(alias="from", max_length=40)] = None,
                end: Annotated[str | None, Query(alias="to", max_length=40)] = None) -> LedgerOut:
    site = site_or_404(ctx.registry, who, site_id)
    return _ledger_out(ctx.store, site.territory, start, end)


def _ledger_out(store: Store, territory: str, start: str | None, end: str | None) -> LedgerOut:
    chain = store.ledger(territory)
    period = get_period(start, end) if start or end else None
    shown = [e for e in chain if period is None or period.start <= e.day + DAY and e.day < period.end]
    return LedgerOut(territory=territory, entries=[ledger.entry_doc(e) for e in shown],
                     problems=ledger.chain_problems(chain))


@router.get("/territories/{territory_id}/ledger/{day}/proof", response_model=ProofOut,
            summary="Proof that a stored reading belongs to a sealed day (Merkle audit paths)")
def reading_proof(territory_id: TerritoryId, day: DayPath, ctx: Ctx, who: Who,
                  device: Annotated[str, Query(max_length=48)],
                  ts: Annotated[int, Query(ge=0, le=4102444800, description="The reading's time, Unix seconds.")],
                  seq: Annotated[int | None, Query(ge=0, description="Its seq, when several share ts.")] = None
                  ) -> ProofOut:
    reg = ctx.registry
    territory_or_404(reg, who, territory_id)
    start = parse_day(day)
    found = reg.device(device)
    at = reg.site(found.site_at(ts)) if found is not None else None
    if at is None or at.territory != territory_id or not start <= ts < start + DAY:
        raise ApiProblem(404, "Reading not found", f"no device {device!r} in {territory_id!r} on {day} at {ts}")
    site = at.id
    if readings_resolution(ctx, reg, who, site) != 0:
        raise ApiProblem(404, "Reading not found", f"site {site!r} does not share its readings with this key")
    entry = ledger.latest(ctx.store.ledger(territory_id)).get(start)
    if entry is None:
        raise ApiProblem(404, "Day not sealed", f"{day} of {territory_id!r} is not in the ledger yet")
    rows = ledger_readings(ctx.store, reg, territory_id, start, {site})
    match = [r for r in rows if r.device == device and r.ts == ts and (seq is None or r.seq == seq)]
    if not match:
        raise ApiProblem(404, "Reading not found", f"no stored reading of {device!r} at {ts}")
    tree = DayReadings.of(territory_id, start, rows).trees()[site]
    proof = ledger.prove(tree, entry.sites, match[0].ledger_bytes())
    checks = entry.signature_checks(device)
    return ProofOut(entry=ledger.entry_doc(entry), proof=ledger.proof_doc(proof),
                    valid=ledger.verify_proof(proof, entry.root), signature=reading_signature(checks, match[0].checked),
                    device_checks=None if checks is None else {"readings": checks[0], "checked": checks[1]})


def reading_signature(checks: tuple[int, int] | None, stored_checked: bool) -> str:
    """A reading's signature status from its device's sealed checks of the day; when only
    some of them were checked (a key provisioned that day), the stored reading's own flag
    says which."""
    if checks is None:
        return "not recorded"
    count, checked = checks
    if 0 < checked < count:
        return "signed and checked" if stored_checked else "unsigned"
    return ledger.signature_word(count, checked)


# --- exports ----------------------------------------------------------------------------


def whole_days(period: Period) -> Period:
    """The UTC days a period touches, as a period."""
    end = day_start(period.end - 1) + DAY
    if (end - day_start(period.start)) // DAY > MAX_EXPORT_DAYS:
        raise invalid_parameter("from", f"an export holds at most {MAX_EXPORT_DAYS} UTC days: ask for fewer")
    return Period(day_start(period.start), end)


def export_doc(ctx: Context, registry: Registry, who: Principal, scope: Scope, period: Period,
               indicators: dict[str, Any]) -> dict[str, Any]:
    """The export of a scope's readings over whole UTC days, with the ledger entries of those
    days and the registry entries and indicator values to recompute (docs/ledger.md)."""
    (territory,) = scope_territories(registry, scope)
    sites = [s.id for s in registry.sites_of(territory) if scope.kind == "territory" or s.id in scope.ids]
    shown = {s: readings_resolution(ctx, registry, who, s) for s in sites}
    stored = sum(day_count(ctx.store, registry, territory, day) for day in range(period.start, period.end, DAY))
    if stored > MAX_EXPORT_READINGS:
        raise ApiProblem(422, "Export too large", f"{stored} readings in these days, at most {MAX_EXPORT_READINGS} "
                                                  "in an export: ask for fewer days, or export a site")
    readings, edges = [], []
    for day in range(period.start, period.end, DAY):
        rows = ledger_readings(ctx.store, registry, territory, day, {s for s, r in shown.items() if r is not None})
        by_device: dict[tuple[str, str], list] = {}
        for row in rows:
            by_device.setdefault((row.site, row.device), []).append(row)
        for (site, _), group in by_device.items():
            group.sort(key=lambda r: (r.ts, r.boot, r.seq))
            keep = downsample([r.ts for r in group], shown[site] or 0)
            readings += [_row_doc(group[i]) for i in keep]
    devices = [d for d in registry.devices if any(s in sites for s, _, _ in d.tenures())]
    for d in devices:
        if shown.get(d.site_at(period.start)) == 0:
            stored = ctx.store.readings(d.id, period.start, period.end, MEASUREMENT_FIELDS, after=True)
            edges += [{"device": d.id, "ts": r.ts, "boot": r.boot, "seq": r.seq,
                       **{k: v for k, v in r.values.items() if v is not None}}
                      for r in stored if not period.start <= r.ts < period.end]
    chain = ctx.store.ledger(territory)
    return {
        "format": EXPORT_FORMAT,
        "scope": {"kind": scope.kind, "ids": list(scope.ids)},
        "territory": territory,
        "period": {"from": period.start, "to": period.end},
        "shared": {s: ("readings" if r == 0 else f"readings every {r} s" if r else "indicators only")
                   for s, r in shown.items()},
        "registry": _registry_doc(registry, territory, sites, devices),
        "readings": readings,
        "edges": edges,
        "ledger": [ledger.entry_doc(e) for e in _run(chain, period)],
        "indicators": indicators,
    }


def _run(chain: list[ledger.LedgerEntry], period: Period) -> list[ledger.LedgerEntry]:
    """The run of the chain from the first to the last entry of the period's days (the
    entries between included, so that every link in it can be checked)."""
    seqs = [e.seq for e in chain if period.start <= e.day < period.end]
    return [e for e in chain if seqs and min(seqs) <= e.seq <= max(seqs)]


def _row_doc(row) -> dict[str, Any]:
    return {"device": row.device, "site": row.site, "ts": row.ts, "boot": row.boot, "seq": row.seq, **row.values}


def _registry_doc(registry: Registry, territory: str, sites: list[str], devices: list) -> dict[str, Any]:
    t = registry.territory(territory)
    return json.loads(json.dumps({
        "waste_streams": dict(registry.waste_streams),
        "territories": [t.model_dump(mode="json")] if t else [],
        "sites": [s.model_dump(mode="json") for s in registry.sites if s.id in sites],
        "devices": [d.model_dump(mode="json", exclude_defaults=True) for d in devices]}))


EXPORT_COLUMNS = ["device", "site", "ts", "boot", "seq", *MEASUREMENT_FIELDS]


def export_rows(doc: dict[str, Any]) -> list[list[str]]:
    """An export's readings as CSV rows (the ledger comes from the ledger endpoint)."""
    rows = [EXPORT_COLUMNS]
    for r in doc["readings"]:
        rows.append(["" if r.get(c) is None else repr(r[c]) if isinstance(r[c], float) else str(r[c])
                     for c in EXPORT_COLUMNS])
    return rows


def _export(ctx: Context, who: Principal, budget, scope: Scope, period: Period, fmt: str, name: str,
            response: Response):
    reg = ctx.registry
    days = whole_days(period)
    budget.check_cost(period_cost(reg, scope, days))
    values = indicator_set(ctx, reg, scope, days, None, response, budget).model_dump(mode="json", by_alias=True)
    doc = export_doc(ctx, reg, who, scope, days, values)
    if fmt == "csv":
        return csv_response(export_rows(doc), f"{name}-readings.csv")
    return doc


When = Annotated[Period, Depends(get_period)]
EXPORT_OK = {200: {"content": {"application/json": {"schema": {"type": "object"}},
                               "text/csv": {"example": "device,site,ts,boot,seq,energy_wh,...\r\n"}},
                   "description": "The export (JSON, docs/ledger.md), or its readings as CSV with `format=csv`."}}


@router.get("/territories/{territory_id}/export", responses=EXPORT_OK, summary="A territory's readings of whole UTC days with their "
            "ledger, for `boucle verify` (at most 31 days; sites share readings by consent)")
def territory_export(territory_id: TerritoryId, ctx: Ctx, who: Who, budget: Budget, response: Response,
                     period: When, fmt: FormatQuery = "json"):
    territory_or_404(ctx.registry, who, territory_id)
    return _export(ctx, who, budget, Scope("territory", (territory_id,)), period, fmt, territory_id, response)


@router.get("/sites/{site_id}/export", responses=EXPORT_OK, summary="A site's readings of whole UTC days with its territory's "
            "ledger, for `boucle verify` (at most 31 days)")
def site_export(site_id: SiteId, ctx: Ctx, who: Who, budget: Budget, response: Response, period: When,
                fmt: FormatQuery = "json"):
    site_or_404(ctx.registry, who, site_id)
    return _export(ctx, who, budget, Scope("site", (site_id,)), period, fmt, site_id, response)
