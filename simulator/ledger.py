"""Ground-truth ledger: what really happened, per device and hour, as JSON lines.

One row per device per simulated hour in which something happened (docs/simulator.md):
    {"hour": 1767222000, "device": "...", "site": "...", "territory": "...",
     "kind": "energy", "channel": "grid_import", "wh": 1234, "true_wh": 1234.56}
    {"hour": ..., "kind": "waste", "stream": "glass", "measured": "weight",
     "deposited_kg": 12.5, "collected_kg": 0.0, "emptyings": 0, "overflows": 0, "readings": 60}
    {"hour": ..., "kind": "water", "litres": 61.0, "true_l": 61.4, "readings": 60}

`wh` is what the meter counted (integer counter increments between consecutive
readings, spread linearly over the time between them, as the server accrues them: what the
API must find, to its rounding of a mWh per quarter-hour);
`true_wh` is the energy before integer rounding; `litres` and `true_l` the same for a water
meter's counter; `deposited_kg` is the mass actually
put in the bin, before sensor noise.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any


class Ledger:
    """Accumulates truth per (device, hour) and appends finished hours to a file."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self._rows: dict[tuple[str, int], dict[str, Any]] = {}
        self._static: dict[str, dict[str, Any]] = {}
        self._file: IO[str] | None = None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")

    def describe(self, device: str, **fields: Any) -> None:
        """Static fields copied into every row of a device (site, territory, kind, ...)."""
        self._static[device] = fields

    def add(self, device: str, ts: int, **amounts: float) -> None:
        hour = ts - ts % 3600
        row = self._rows.get((device, hour))
        if row is None:
            row = self._rows[(device, hour)] = {"hour": hour, "device": device, **self._static[device]}
        for key, value in amounts.items():
            row[key] = row.get(key, 0) + value

    def flush(self, before: int | None = None) -> None:
        """Write rows of hours that ended before `before` (all rows when None)."""
        done = [k for k in self._rows if before is None or k[1] + 3600 <= before]
        for key in sorted(done, key=lambda k: (k[1], k[0])):
            row = self._rows.pop(key)
            if self._file:
                self._file.write(json.dumps(_rounded(row), sort_keys=True) + "\n")
        if self._file:
            self._file.flush()

    def close(self) -> None:
        self.flush()
        if self._file:
            self._file.close()
            self._file = None


def _rounded(row: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()}


def read_ledger(path: str | Path) -> list[dict[str, Any]]:
    """All rows of a ledger file."""
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def totals(rows: Iterable[dict[str, Any]], by: str, field: str, start: int | None = None,
           end: int | None = None, **where: Any) -> dict[str, float]:
    """Sum `field` per value of `by` (device, site, territory, stream...) over hours in [start, end)."""
    out: dict[str, float] = defaultdict(float)
    for row in rows:
        if start is not None and row["hour"] < start:
            continue
        if end is not None and row["hour"] >= end:
            continue
        if any(row.get(k) != v for k, v in where.items()):
            continue
        out[row.get(by, "")] += row.get(field, 0)
    return dict(out)
