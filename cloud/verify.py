"""`boucle verify`: check an export offline (docs/ledger.md). Recomputes each UTC day's
Merkle roots from the exported readings and compares them with the day's ledger entry,
checks the entries' digests and links, and recomputes the exported indicator values from
the readings; says which day, site or value does not match. Exit status 0 when everything
matches, 1 when something does not."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

from boucle import ledger
from boucle.cli import UserError
from boucle.protocol import INTEGER_FIELDS, MEASUREMENT_FIELDS, Reading
from boucle.registry import Registry
from boucle.rollup import DAY
from boucle.storage.ledger_days import DayReadings, LedgerReading
from cloud.citations import iso_day

REL_TOLERANCE = 1e-9


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("export", help="an export: JSON (GET /v1/{territories,sites}/ID/export) or its CSV "
                                       "(format=csv, with --ledger)")
    parser.add_argument("--ledger", help="the ledger (GET /v1/territories/ID/ledger) for a CSV export")


def run(args: argparse.Namespace) -> int:
    doc = load_export(Path(args.export), Path(args.ledger) if args.ledger else None)
    try:
        lines, ok = verify(doc)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise UserError(f"{args.export}: not a complete export ({type(exc).__name__}: {exc})") from None
    print("\n".join(lines))
    return 0 if ok else 1


def load_export(path: Path, ledger_path: Path | None) -> dict[str, Any]:
    """An export as a dict (a CSV one: its readings, with the ledger file's entries)."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    if path.suffix.lower() == ".csv":
        if ledger_path is None:
            raise UserError("a CSV export holds readings only: give its ledger with --ledger LEDGER.json")
        try:
            entries = json.loads(ledger_path.read_text("utf-8"))["entries"]
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"{ledger_path}: not a ledger (GET /v1/territories/ID/ledger): {exc}") from None
        readings = [{k: _cell(k, v) for k, v in row.items() if v != ""} for row in csv.DictReader(text.splitlines())]
        return {"readings": readings, "ledger": entries, "shared": {r["site"]: "readings" for r in readings}}
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{path}: not JSON ({exc})") from None
    if doc.get("format") != "boucle-export/1":
        raise UserError(f"{path}: not a Boucle export (format boucle-export/1)")
    return doc


def _cell(name: str, text: str):
    if name in ("device", "site"):
        return text
    if name in ("ts", "boot", "seq") or name in INTEGER_FIELDS:
        return int(text)
    return float(text)


def _rows(readings: list[dict]) -> dict[int, list[LedgerReading]]:
    by_day: dict[int, list[LedgerReading]] = {}
    for r in readings:
        values = {k: v for k, v in r.items() if k in MEASUREMENT_FIELDS and v is not None}
        row = LedgerReading(r["device"], r["site"], int(r["ts"]), int(r["boot"]), int(r["seq"]), values, 0.0)
        by_day.setdefault(row.ts - row.ts % DAY, []).append(row)
    return by_day


def verify(doc: dict[str, Any]) -> tuple[list[str], bool]:
    """Lines saying what matches and what does not, and whether everything matched."""
    entries = sorted((ledger.entry_of(e) for e in doc["ledger"]), key=lambda e: e.seq)
    lines, ok = [], True
    for problem in ledger.chain_problems(entries, whole=False):
        lines.append(f"ledger: {problem}")
        ok = False
    current = ledger.latest(entries)
    by_day = _rows(doc["readings"])
    shared = {s for s, how in doc.get("shared", {}).items() if how == "readings"}
    period = doc.get("period")
    days = range(period["from"], period["to"], DAY) if period else sorted(by_day)
    for day in days:
        entry = current.get(day)
        rows = by_day.get(day, [])
        if entry is None:
            lines.append(f"{iso_day(day)}: not sealed in the ledger ({len(rows)} readings exported)")
            ok = ok and not rows
            continue
        mine = {s.site: s for s in DayReadings.of(entry.territory, day, rows).roots()}
        sealed = {s.site: s for s in entry.sites}
        wrong = []
        for site in sorted(shared):
            got, want = mine.get(site), sealed.get(site)
            if (got.root if got else None) != (want.root if want else None):
                wrong.append(f"site {site}: {got.count if got else 0} readings exported, "
                             f"{want.count if want else 0} sealed" + (
                                 ", same count but other readings" if got and want and got.count == want.count
                                 else ""))
        unshared = sorted(set(sealed) - shared)
        note = (f"; {', '.join(unshared)}: readings not shared as stored, checked by their roots only"
                if unshared else "")
        wrong += _checks_against(entry, rows, shared)
        signatures = _signatures(entry, set(doc.get("shared") or sealed))
        if wrong:
            ok = False
            lines.append(f"{iso_day(day)} v{entry.version}: DOES NOT MATCH the ledger: {'; '.join(wrong)}")
        else:
            lines.append(f"{iso_day(day)} v{entry.version}: matches the ledger "
                         f"({sum(mine[s].count for s in shared if s in mine)} readings{note}){signatures}")
    if doc.get("indicators") and doc.get("registry"):
        more, same = verify_indicators(doc, entries)
        lines += more
        ok = ok and same
    return lines, ok


def _checks_against(entry: ledger.LedgerEntry, rows: list[LedgerReading], shared: set[str]) -> list[str]:
    """The devices of shared sites whose exported readings are not as many as the entry's
    signature checks count (the checks would then not be of these readings)."""
    if entry.checks is None:
        return []
    exported: dict[tuple[str, str], int] = {}
    for row in rows:
        exported[row.site, row.device] = exported.get((row.site, row.device), 0) + 1
    sealed = {(c.site, c.device): c.count for c in entry.checks if c.site in shared}
    return [f"device {device}: {exported.get((site, device), 0)} readings exported, "
            f"{sealed.get((site, device), 0)} in the signature checks"
            for site, device in sorted(sealed.keys() | {k for k in exported if k[0] in shared})
            if exported.get((site, device), 0) != sealed.get((site, device), 0)]


def _signatures(entry: ledger.LedgerEntry, sites: set[str]) -> str:
    """What the entry says of the signatures of its sites' readings (those in `sites`)."""
    if entry.checks is None:
        return "; signatures: not recorded (sealed before the ledger counted them)"
    groups: dict[str, list[str]] = {}
    totals: dict[str, int] = {}
    for c in entry.checks:
        if c.site in sites:
            word = ledger.signature_word(c.count, c.checked)
            groups.setdefault(word, []).append(c.device)
            totals[word] = totals.get(word, 0) + c.count
    parts = [f"{word}: {totals[word]} readings of {', '.join(devices)}" for word, devices in sorted(groups.items())]
    return f"; {'; '.join(parts)}" if parts else ""


def verify_indicators(doc: dict[str, Any], entries: list[ledger.LedgerEntry]) -> tuple[list[str], bool]:
    """Recompute the export's indicator values from its readings (the raw-readings path of
    cloud.indicators, in a store in memory) and compare them."""
    from boucle.storage.sqlite import SQLiteStore
    from cloud.indicators import Period, Scope, compute_indicators
    from cloud.models import plain

    shared = doc.get("shared", {})
    if any(how != "readings" for how in shared.values()):
        hidden = sorted(s for s, how in shared.items() if how != "readings")
        return [f"indicators: not recomputed: sites {', '.join(hidden)} do not share their readings"], True
    registry = Registry.model_validate(doc["registry"])
    store = SQLiteStore(":memory:")
    try:
        rows = [*doc["readings"], *doc.get("edges", [])]
        store.write_readings([Reading(r["device"], int(r["boot"]), int(r["seq"]), int(r["ts"]),
                                      {k: v for k, v in r.items() if k in MEASUREMENT_FIELDS}) for r in rows], 0.0)
        scope = Scope(doc["scope"]["kind"], tuple(doc["scope"]["ids"]))
        period = Period(doc["period"]["from"], doc["period"]["to"])
        values = {v.id: plain(v.value) for v in compute_indicators(store, registry, scope, period, raw=True)}
    finally:
        store.close()
    lines, ok = [], True
    digests = {e.digest.hex() for e in entries}
    for v in doc["indicators"]["indicators"]:
        cited = [c for c in v.get("sources", []) if c.get("digest") and c["digest"] not in digests]
        mine, theirs = values.get(v["id"]), v["value"]
        same = mine == theirs or (mine is not None and theirs is not None
                                  and abs(mine - theirs) <= REL_TOLERANCE * max(abs(mine), abs(theirs)))
        if not same:
            ok = False
            lines.append(f"indicator {v['id']}: DOES NOT MATCH: exported {theirs}, recomputed {mine}")
        elif cited:
            ok = False
            lines.append(f"indicator {v['id']}: cites days not in the export's ledger: "
                         f"{', '.join(c['day'] for c in cited)}")
    if ok:
        lines.append(f"indicators: {len(doc['indicators']['indicators'])} values recomputed, all match")
    return lines, ok
