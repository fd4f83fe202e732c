"""Storage interface: the gateway writes through it, the cloud reads through it.

Backends: `sqlite` (embedded, default) in boucle.storage.sqlite. Writes are idempotent:
a reading is keyed by (device, boot, seq), so rewriting it leaves the same state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from boucle.protocol import Reading, ReadingRow
from boucle.storage.dead_letters import DeadLetter, DeadLetterBounds, DeadLetterTrim


@dataclass(frozen=True, slots=True)
class StoredReading:
    """A reading as read back: time, device order, and the measured fields."""

    ts: int
    boot: int
    seq: int
    values: dict[str, float | int]


@dataclass(frozen=True, slots=True)
class DeviceState:
    """The latest retained status or health message of a device."""

    device: str
    channel: str  # "status" or "health"
    doc: dict
    received: float


@dataclass(frozen=True, slots=True)
class Window:
    """One device's aggregate over [start, start + resolution): made by gateway.aggregate."""

    device: str
    resolution: str
    start: int
    readings: int
    energy_wh: float | None = None
    power_mean_w: float | None = None
    power_max_w: float | None = None
    deposited_g: float | None = None
    collected_g: float | None = None
    emptyings: int | None = None
    fill_mean_pct: float | None = None
    fill_max_pct: float | None = None


class MonthPack(NamedTuple):
    """One device's 15-min windows of one UTC month packed in arrays (gateway.month_packs),
    so that a year of a thousand devices reads in a few thousand rows. A named tuple: a
    year's read makes 12,000 of them, three times faster than a frozen dataclass."""

    device: str
    month: int
    """UTC start of the month."""
    readings: bytes
    """int32 per UTC day: readings received."""
    amount: bytes
    """float64 per UTC day: accepted Wh (meters) or deposited g (bins)."""
    quarter_wh: bytes = b""
    """float32 per 15-min slot of the month, NaN where no window (meters; empty otherwise or
    when read without quarters)."""
    fill_max: bytes = b""
    """float32 per UTC day: fullest fill %, NaN without fill readings (bins with fill_pct)."""
    emptyings: bytes = b""
    """float64 pairs (ts, level just before): g for scale bins, % for fill-only bins."""


WINDOW_VALUES = ("readings", "energy_wh", "power_mean_w", "power_max_w", "deposited_g", "collected_g",
                 "emptyings", "fill_mean_pct", "fill_max_pct")


class Store(Protocol):
    dedups: bool
    """True when write_readings itself ignores repeats of (device, boot, seq) and counts only
    new ones; such a store also has `stored_rows(keys)`, the stored rows of these
    identities (what the first write under each stored), by identity."""

    def write_readings(self, readings: Sequence[Reading], received: float) -> int:
        """Store readings; return how many were new (repeats by identity are ignored)."""

    def write_rows(self, rows: Sequence[ReadingRow], received: float) -> int:
        """write_readings for rows (the gateway's hot path: no Reading objects)."""

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

    def readings(self, device: str, start: int, end: int, fields: Sequence[str]) -> list[StoredReading]:
        """A device's readings with start <= ts < end, oldest first, plus the last one
        before `start` (the baseline for counter deltas) when there is one."""

    def reading_counts(self, devices: Sequence[str], start: int, end: int) -> dict[str, int]:
        """Number of readings per device with start <= ts < end."""

    def last_seen(self, devices: Sequence[str]) -> dict[str, tuple[int, float]]:
        """Per device: (ts of its newest reading, time it was received)."""

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters."""

    def next_reading_ts(self, device: str, after: int) -> int | None:
        """ts of a device's first reading with ts > after, if any."""

    def write_windows(self, windows: Sequence[Window]) -> None:
        """Store event-time windows (gateway.aggregate.Window); rewriting replaces them."""

    def windows(self, devices: Sequence[str], resolution: str, start: int, end: int) -> list[Window]:
        """Windows of these devices with start <= window start < end, by device then time."""

    def write_month_packs(self, packs: Sequence[MonthPack]) -> None:
        """Store month packs (gateway.month_packs); rewriting one replaces it."""

    def month_packs(self, devices: Sequence[str], start: int, end: int,
                    quarters: bool = True) -> list[MonthPack]:
        """Packs of these devices with start <= month < end, by device id then month; without
        `quarters` their quarter_wh is left empty (less to read)."""

    def data_version(self) -> int:
        """A number that changes whenever stored data changes (for caches)."""

    def close(self) -> None: ...


def open_store(url: str, token: str = "", precision: str = "s", device_tags=None) -> Store:
    """Open a store from a URL: `sqlite:///PATH` (or a bare path), or
    `influx+http://HOST:PORT/DATABASE` (InfluxDB v1-compatible API; influx+https for TLS)."""
    if url.startswith(("influx+http://", "influx+https://")):
        from boucle.storage.influx import influx_from_url

        return influx_from_url(url, token, precision, device_tags=device_tags)
    from boucle.storage.sqlite import SQLiteStore

    if url.startswith("sqlite:///"):
        return SQLiteStore(url[len("sqlite:///"):])
    if "://" in url:
        raise ValueError(f"unsupported storage URL {url!r}: use sqlite:///PATH or influx+http://HOST:PORT/DATABASE")
    return SQLiteStore(url)
