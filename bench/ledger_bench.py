"""Ledger benchmark: the daily ledger's work and storage for a territory's day, against
reading that day's readings back, in the same run (docs/ledger.md, "Cost").

    .venv/bin/python -m bench.ledger_bench --devices 1000 --sites 100

One territory, `devices` energy meters over `sites` sites, one reading a minute for one
UTC day (1,000 devices: 1.44 M readings), in an embedded store (SQLite, a temporary file).
Timed, each on the same stored day:
- baseline: reading the day's readings of every device (`Store.readings`, all fields);
- sealing: what the ledger stage does for a closed day: read it (boucle.storage.ledger_days),
  encode each reading, hash the three-level tree, seal the entry and append it;
- hashing alone: the encoding and the devices' trees over the readings already read (the
  baseline's);
- a count check (the ledger stage's cheap look at a sealed day, each round).
Storage: the bytes of the sealed entry as stored, beside the readings' share of the file.
Nothing here is a test: numbers are printed (JSON), never asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from boucle import ledger
from boucle.protocol import MEASUREMENT_FIELDS
from boucle.registry import load_registry
from boucle.storage import ledger_sites_text
from boucle.storage.ledger_days import FIELDS, day_count, day_roots, stored_leaves
from boucle.storage.sqlite import SQLiteStore

DAY = 1774656000  # 2026-03-28 00:00 UTC


def registry_text(devices: int, sites: int) -> str:
    parts = [('[[territories]]\nid = "bench"\nname = "Bench"\nkind = "commune"\npopulation = 100000\n'
             "centroid = [45.0, 4.0]\n")]
    for s in range(sites):
        parts.append(f'[[sites]]\nid = "site-{s:04d}"\nterritory = "bench"\nname = "Site {s}"\nkind = "office"\n'
                     "location = [45.0, 4.0]\n")
    for d in range(devices):
        parts.append(f'[[devices]]\nid = "dev-{d:05d}"\nsite = "site-{d % sites:04d}"\nkind = "energy"\n'
                     'channel = "grid_import"\nrated_power_w = 9000\n')
    return "\n".join(parts)


def fill(store: SQLiteStore, devices: int, interval_s: int) -> int:
    """A day of readings of every device; how many."""
    n = 0
    for d in range(devices):
        rows = [(f"dev-{d:05d}", 1, k, DAY + k * interval_s, 10 * k, 600.0 + k % 50, 230.1,
                 *(None,) * (len(MEASUREMENT_FIELDS) - 3)) for k in range(86400 // interval_s)]
        n += store.write_rows(rows, DAY + 86400 + 60)
    return n


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench_ledger(devices: int = 1000, sites: int = 100, interval_s: int = 60) -> dict:
    with tempfile.TemporaryDirectory(prefix="boucle-ledger-bench-") as tmp:
        registry_path = Path(tmp) / "registry.toml"
        registry_path.write_text(registry_text(devices, sites), "utf-8")
        registry = load_registry(registry_path)
        store = SQLiteStore(Path(tmp) / "b.db")
        readings = fill(store, devices, interval_s)
        ids = [d.id for d in registry.devices]
        read_s, stored = timed(lambda: {d: store.readings(d, DAY, DAY + 86400, FIELDS) for d in ids})
        got = sum(map(len, stored.values()))

        def seal():
            day = day_roots(store, registry, "bench", DAY)
            entry = ledger.seal("bench", DAY, day.every, [], time.time(), day.checks)
            store.append_ledger(entry)
            return entry

        seal_s, entry = timed(seal)
        hash_s, _ = timed(lambda: [ledger.merkle_root([leaf[1] for leaf in sorted(stored_leaves(d, rows, DAY))])
                                   for d, rows in stored.items()])
        count_s, counted = timed(lambda: day_count(store, registry, "bench", DAY))
        (entry_bytes,) = store._conn().execute(
            "SELECT length(territory) + 8 * 5 + length(root) + length(prev) + length(digest) + length(sites) "
            "FROM ledger").fetchone()
        store.close()
        file_bytes = (Path(tmp) / "b.db").stat().st_size
    assert counted == readings == got and entry.count == readings
    return {"devices": devices, "sites": sites, "readings": readings,
            "read_day_s": round(read_s, 3), "seal_day_s": round(seal_s, 3), "hash_only_s": round(hash_s, 3),
            "count_check_s": round(count_s, 4), "seal_to_read_ratio": round(seal_s / read_s, 2),
            "hash_to_read_ratio": round(hash_s / read_s, 2),
            "entry_bytes": entry_bytes, "sites_json_bytes": len(ledger_sites_text(entry.sites)),
            "checks_json_bytes": len(ledger_sites_text(entry.sites, entry.checks)) - len(ledger_sites_text(entry.sites)),
            "store_file_bytes": file_bytes, "entry_per_reading_bytes": round(entry_bytes / readings, 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--interval-s", type=int, default=60)
    args = parser.parse_args(argv)
    json.dump(bench_ledger(args.devices, args.sites, args.interval_s), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
