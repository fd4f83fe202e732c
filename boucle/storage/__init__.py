"""Storage interface: the gateway writes through it, the cloud reads through it.

Backends: `sqlite` (embedded, default) in boucle.storage.sqlite. Writes are idempotent:
a reading is keyed by (device, boot, seq), so rewriting it leaves the same state.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from boucle.consent import Consent
from boucle.ledger import DeviceCheck, LedgerEntry, SiteRoot
from boucle.protocol import MEASUREMENT_FIELDS, Reading, ReadingRow
from boucle.rollup import (
    DAY_COLUMNS,
    MONTH_SLOT_COLUMNS,
    MONTH_SUM_COLUMNS,
    DayRow,
    MonthRow,
    MonthSlots,
)
from boucle.storage.dead_letters import DeadLetter, DeadLetterBounds, DeadLetterTrim


@dataclass(frozen=True, slots=True)
class StoredReading:
    """A reading as read back: time, device order, and the measured fields."""

    ts: int
    boot: int
    seq: int
    values: dict[str, float | int]


RECEIVED = "received"
"""When the gateway stored a reading (its clock): readable beside the measurement fields."""
SIG_CHECKED = "sig_checked"
"""Whether the gateway checked a reading's signature against its device's key (1) or took it
unsigned, as the registry allowed (null): readable beside the measurement fields."""
READABLE_FIELDS = frozenset((*MEASUREMENT_FIELDS, RECEIVED, SIG_CHECKED))

ROLLUP_TABLES = {"rollup_days": DAY_COLUMNS, "rollup_months": MONTH_SUM_COLUMNS,
                 "rollup_month_slots": MONTH_SLOT_COLUMNS}
"""The stores' rollup tables (measurements) and the boucle.rollup columns each holds; every
row also keeps its `row_digest` of them."""


def ledger_sites_text(sites: Sequence[SiteRoot], checks: Sequence[DeviceCheck] | None = None) -> str:
    """How the stores keep a ledger entry's site roots: JSON [[site, root hex, count], ...];
    with its signature checks, {"sites": that, "checks": [[site, device, count, checked], ...]}."""
    roots = [[s.site, s.root.hex(), s.count] for s in sites]
    if checks is None:
        return json.dumps(roots, separators=(",", ":"))
    return json.dumps({"sites": roots, "checks": [[c.site, c.device, c.count, c.checked] for c in checks]},
                      separators=(",", ":"))


def ledger_sites(text: str) -> tuple[SiteRoot, ...]:
    doc = json.loads(text)
    return tuple(SiteRoot(site, bytes.fromhex(root), count)
                 for site, root, count in (doc["sites"] if isinstance(doc, dict) else doc))


def ledger_checks(text: str) -> tuple[DeviceCheck, ...] | None:
    """The signature checks kept with an entry's site roots (None for an entry without)."""
    doc = json.loads(text)
    return tuple(DeviceCheck(*c) for c in doc["checks"]) if isinstance(doc, dict) else None


def check_fields(fields: Sequence[str]) -> None:
    unknown = set(fields) - READABLE_FIELDS
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}")


@dataclass(frozen=True, slots=True)
class ReadingMarks:
    """A device's stored readings from a time on, in a few numbers (what the gateway checks
    its memory of them against): how many, the latest `received` among them, and the last
    reading before that time (rollup fields and `received`)."""

    count: int
    received: float | None
    before: StoredReading | None


@dataclass(frozen=True, slots=True)
class DeviceState:
    """The latest retained status or health message of a device."""

    device: str
    channel: str  # "status" or "health"
    doc: dict
    received: float


class Store(Protocol):
    dedups: bool
    """True when write_readings itself ignores repeats of (device, boot, seq) and counts only
    new ones; such a store also has `stored_rows(keys)`, the stored rows of these
    identities (what the first write under each stored), by identity."""

    def write_readings(self, readings: Sequence[Reading], received: float) -> int:
        """Store readings; return how many were new (repeats by identity are ignored)."""

    def write_rows(self, rows: Sequence[ReadingRow], received: float, checked: Collection[str] = ()) -> int:
        """write_readings for rows (the gateway's hot path: no Reading objects). `checked`:
        the devices whose readings among them had their signature checked (SIG_CHECKED)."""

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Keep refused messages with their reason."""

    def trim_dead_letters(self, bounds: DeadLetterBounds) -> DeadLetterTrim:
        """Drop the oldest dead letters of each device past the per-device bounds, then the
        oldest of all past the total bounds. Reads a tally, not the letters, when nothing
        is over: call it after each batch that wrote letters."""

    def write_device_states(self, states: Sequence[DeviceState]) -> None:
        """Keep the latest status / health document per device and channel."""

    def device_states(self, devices: Sequence[str]) -> dict[str, dict[str, DeviceState]]:
        """Per device, per channel, the latest state."""

    def readings(self, device: str, start: int, end: int, fields: Sequence[str],
                 after: bool = False) -> list[StoredReading]:
        """A device's readings with start <= ts < end, oldest first, plus the last one
        before `start` (the baseline for counter deltas) when there is one, and with
        `after` the first one at or after `end` when there is one. `fields`: measurement
        fields and RECEIVED."""

    def reading_marks(self, since: Mapping[str, int]) -> dict[str, ReadingMarks]:
        """Per device of `since`: the marks of its readings with ts >= since[device] (the
        last one before: boucle.rollup.FIELDS and RECEIVED), for all of them at once."""

    def reading_counts(self, devices: Sequence[str], start: int, end: int) -> dict[str, int]:
        """Number of readings per device with start <= ts < end."""

    def last_seen(self, devices: Sequence[str]) -> dict[str, tuple[int, float]]:
        """Per device: (ts of its newest reading, time it was received)."""

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters."""

    def next_reading_ts(self, device: str, after: int) -> int | None:
        """ts of a device's first reading with ts > after, if any."""

    def write_rollups(self, days: Sequence[DayRow], months: Sequence[MonthRow]) -> None:
        """Store rollup rows (boucle.rollup); rewriting a device's day or month replaces it."""

    def day_rollups(self, devices: Sequence[str], start: int, end: int) -> list[DayRow]:
        """Day rows of these devices with start <= day < end, by device then day."""

    def month_rollups(self, devices: Sequence[str], start: int, end: int) -> list[MonthRow]:
        """Month rows of these devices with start <= month < end, by device then month,
        without their slots (see month_slots): the sums and events of each month's closed
        days (boucle.rollup)."""

    def month_slots(self, devices: Sequence[str], start: int, end: int) -> list[MonthSlots]:
        """The meters' slots of the month rows with start <= month < end, by device then month
        (those of each month's closed days: boucle.rollup)."""

    def rollup_digests(self, table: str, devices: Sequence[str], start: int, end: int
                       ) -> dict[tuple[str, int], int | None]:
        """The row digests of a ROLLUP_TABLES table with start <= day or month < end, by
        (device, day or month); None for a row stored without one."""

    def append_ledger(self, entry: LedgerEntry) -> bool:
        """Add an entry to its territory's ledger chain (boucle.ledger), never replacing one:
        False when the chain already has an entry of that `seq` (another process sealed it)."""

    def ledger(self, territory: str) -> list[LedgerEntry]:
        """A territory's ledger chain, by seq."""

    def append_consent(self, consent: Consent) -> None:
        """Record a site owner's consent decision (boucle.consent); kept, never replaced."""

    def consents(self) -> list[Consent]:
        """Every recorded consent decision, oldest first."""

    def data_version(self) -> int:
        """A number that changes whenever stored data changes (for caches)."""

    def close(self) -> None: ...


def open_store(url: str, token: str = "", precision: str = "s", device_tags=None, rollup_cache_bytes: int = 0) -> Store:
    """Open a store from a URL: `sqlite:///PATH` (or a bare path), or
    `influx+http://HOST:PORT/DATABASE` (InfluxDB v1-compatible API; influx+https for TLS).

    `rollup_cache_bytes`: keep up to this many bytes of rollup rows in this process, checked
    against the store before each use (boucle.storage.rollup_cache; the API's). Only for
    InfluxDB: the embedded store reads its own file, already mapped in memory."""
    if url.startswith(("influx+http://", "influx+https://")):
        from boucle.storage.influx import influx_from_url

        return influx_from_url(url, token, precision, device_tags=device_tags, rollup_cache_bytes=rollup_cache_bytes)
    from boucle.storage.sqlite import SQLiteStore

    if url.startswith("sqlite:///"):
        return SQLiteStore(url[len("sqlite:///"):])
    if "://" in url:
        raise ValueError(f"unsupported storage URL {url!r}: use sqlite:///PATH or influx+http://HOST:PORT/DATABASE")
    return SQLiteStore(url)
