"""Durable spool between MQTT and storage: SQLite files in WAL mode, on the gateway's disk.

A message is acknowledged to the broker only once it is committed here (synchronous=FULL:
on disk, surviving SIGKILL and power loss). The drain takes messages oldest first and,
once the store confirmed them, moves a watermark past them.

Two files, each with a single writer, so the threads never wait on each other's locks:
- the spool itself (`spool_path`): written only by the spooler thread, which appends
  messages and deletes those below the watermark; the other threads only read it;
- its state (`spool_path` with `.state.db`): written by the writer thread — the watermark,
  the dedup index (device, boot, seq, with a digest of the content first stored under that
  identity), the dead letters already kept, and the devices whose rollups must be
  recomputed — all in the transaction that moves the watermark,
  so a crash at any point replays a batch rather than losing or half-applying it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable, Sequence
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

import msgspec

from boucle.private_files import create_private_file
from boucle.protocol import ReadingRow

_SPOOL = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT, received REAL NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL,
    retain INTEGER NOT NULL DEFAULT 0
);
"""
_STATE = """
CREATE TABLE IF NOT EXISTS watermark (one INTEGER PRIMARY KEY CHECK (one = 1), drained INTEGER NOT NULL);
INSERT OR IGNORE INTO watermark VALUES (1, 0);
CREATE TABLE IF NOT EXISTS seen (
    device TEXT NOT NULL, boot INTEGER NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL, digest INTEGER,
    PRIMARY KEY (device, boot, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_by_time ON seen (ts);
CREATE TABLE IF NOT EXISTS seen_letters (key TEXT PRIMARY KEY, received REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dirty (device TEXT PRIMARY KEY, min_ts INTEGER NOT NULL, max_ts INTEGER NOT NULL);
"""
_MARK_DIRTY = ("INSERT INTO dirty VALUES (?, ?, ?) ON CONFLICT (device) DO UPDATE SET "
               "min_ts = min(min_ts, excluded.min_ts), max_ts = max(max_ts, excluded.max_ts)")
_PACK = msgspec.msgpack.Encoder().encode


def content_digest(row: ReadingRow) -> int:
    """A digest of what a reading says (ts and measurements), to tell a repeat of its
    identity from a reading that reuses it with other content."""
    return zlib.crc32(_PACK(row[3:]))


def _spans(rows: Sequence[ReadingRow]) -> list[tuple[str, int, int]]:
    """(device, earliest ts, latest ts) of each device in the rows."""
    spans: dict[str, tuple[int, int]] = {}
    # A message's rows are consecutive and of one device: one group per message.
    for device, group in groupby(rows, key=itemgetter(0)):
        times = list(map(itemgetter(3), group))
        lo, hi = min(times), max(times)
        if device in spans:
            lo, hi = min(lo, spans[device][0]), max(hi, spans[device][1])
        spans[device] = (lo, hi)
    return [(d, lo, hi) for d, (lo, hi) in spans.items()]


class Spooled(NamedTuple):
    """A message as committed to the spool (a tuple: one is made per message)."""

    id: int
    received: float
    topic: str
    payload: bytes
    retain: bool  # the broker's retained copy (gateway.input.Message.retain)


class SpoolFull(Exception):
    """The spool reached its bound: stop taking messages (the broker keeps them)."""


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=60)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


class Spool:
    """A bounded, durable FIFO of raw MQTT messages, with its drain state."""

    def __init__(self, path: str | Path, max_rows: int):
        self.path = str(path)
        self.state_path = str(Path(self.path).with_suffix(".state.db"))
        for owned in (self.path, self.state_path):
            create_private_file(owned)  # 0600: raw payloads are nobody else's
        self.max_rows = max_rows
        self._local = threading.local()
        self._spool().executescript(_SPOOL)
        if "retain" not in {row[1] for row in self._spool().execute("PRAGMA table_info(spool)")}:
            self._spool().execute("ALTER TABLE spool ADD COLUMN retain INTEGER NOT NULL DEFAULT 0")  # older spools
        self._state().executescript(_STATE)
        if "digest" not in {row[1] for row in self._state().execute("PRAGMA table_info(seen)")}:
            self._state().execute("ALTER TABLE seen ADD COLUMN digest INTEGER")  # older state: NULL, unknown
        self._drained = self._state().execute("SELECT drained FROM watermark").fetchone()[0]
        self._last_id = self._spool().execute("SELECT coalesce(max(id), 0) FROM spool").fetchone()[0]
        self._last_id = max(self._last_id, self._drained)
        self._lock = threading.Lock()

    def _spool(self) -> sqlite3.Connection:
        conn = getattr(self._local, "spool", None)
        if conn is None:
            conn = self._local.spool = _connect(self.path)
        return conn

    def _state(self) -> sqlite3.Connection:
        conn = getattr(self._local, "state", None)
        if conn is None:
            conn = self._local.state = _connect(self.state_path)
        return conn

    @property
    def depth(self) -> int:
        """Messages committed to the spool and not yet in the store."""
        return self._last_id - self._drained

    # --- spooler thread (sole writer of the spool file) ----------------------------

    def append(self, messages: Sequence[tuple[float, str, bytes, bool] | tuple[float, str, bytes]]) -> None:
        """Commit messages (received, topic, payload, retain) durably; raise SpoolFull
        (committing nothing) past the bound. Without the retain flag, a message is live."""
        if messages and len(messages[0]) == 3:
            messages = [(*m, False) for m in messages]
        if self.depth + len(messages) > self.max_rows:
            raise SpoolFull(f"spool holds {self.depth} messages, its bound is {self.max_rows}")
        conn = self._spool()
        with conn:
            # Rows below the watermark are in the store: drop them in the same commit.
            conn.execute("DELETE FROM spool WHERE id <= ?", (self._drained,))
            conn.executemany("INSERT INTO spool (received, topic, payload, retain) VALUES (?, ?, ?, ?)", messages)
            last = conn.execute("SELECT max(id) FROM spool").fetchone()[0]
        with self._lock:
            self._last_id = max(self._last_id, last or 0)

    # --- parser and writer threads (the writer is the sole writer of the state file) ----

    def oldest(self, limit: int, after: int = 0) -> list[Spooled]:
        """Up to `limit` messages not drained yet, oldest first, from after the id `after`."""
        rows = self._spool().execute(
            "SELECT id, received, topic, payload, retain FROM spool WHERE id > ? ORDER BY id LIMIT ?",
            (max(self._drained, after), limit)).fetchall()
        return list(map(Spooled._make, rows))

    def remove(self, ids: Sequence[int], stored: Sequence[ReadingRow] = (),
               letters: Iterable[tuple[str, float]] = (), remember: bool = True) -> None:
        """Move the watermark past drained messages; record their stored readings (unless
        the store dedups them itself: remember=False) and dead letters as seen, and their
        devices as dirty — one transaction."""
        if not ids:
            return
        top = max(ids)
        conn = self._state()
        with conn:
            if remember:
                conn.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?, ?, ?, ?)",
                                 ((*r[:4], content_digest(r)) for r in stored))
            conn.executemany("INSERT OR IGNORE INTO seen_letters VALUES (?, ?)", letters)
            conn.executemany(_MARK_DIRTY, _spans(stored))
            conn.execute("UPDATE watermark SET drained = max(drained, ?)", (top,))
        with self._lock:
            self._drained = max(self._drained, top)

    def seen(self, keys: Sequence[tuple[str, int, int]]) -> dict[tuple[str, int, int], int | None]:
        """Which of these reading identities the gateway has stored, each with the digest of
        the content it stored (`content_digest`; None when an older gateway stored it)."""
        conn = self._state()
        by_boot: dict[tuple[str, int], list[int]] = {}
        for device, boot, seq in keys:
            by_boot.setdefault((device, boot), []).append(seq)
        out: dict[tuple[str, int, int], int | None] = {}
        # One range query per (device, boot): batches hold runs of consecutive seqs.
        for (device, boot), seqs in by_boot.items():
            wanted = set(seqs)
            for seq, digest in conn.execute(
                    "SELECT seq, digest FROM seen WHERE device = ? AND boot = ? AND seq BETWEEN ? AND ?",
                    (device, boot, min(seqs), max(seqs))):
                if seq in wanted:
                    out[(device, boot, seq)] = digest
        return out

    def unseen_letters(self, keys: Sequence[str]) -> set[str]:
        """Which of these dead-letter keys (content hashes) are not stored yet."""
        conn = self._state()
        return {k for k in keys if conn.execute("SELECT 1 FROM seen_letters WHERE key = ?", (k,)).fetchone() is None}

    def forget_before(self, ts: int) -> int:
        """Drop dedup entries older than `ts` (a bounded index; see docs/gateway.md)."""
        conn = self._state()
        with conn:
            conn.execute("DELETE FROM seen_letters WHERE received < ?", (ts,))
            return conn.execute("DELETE FROM seen WHERE ts < ?", (ts,)).rowcount

    def cap_letters(self, keep: int) -> int:
        """Keep the newest `keep` keys of dead letters (a flood of distinct garbage must not
        grow the index until BOUCLE_DEDUP_DAYS); how many were forgotten. A letter's
        redelivery after its key was forgotten is stored again, as its newest copy."""
        conn = self._state()
        (n,) = conn.execute("SELECT count(*) FROM seen_letters").fetchone()
        if n <= keep:
            return 0
        with conn:
            return conn.execute("DELETE FROM seen_letters WHERE key IN "
                                "(SELECT key FROM seen_letters ORDER BY received LIMIT ?)", (n - keep,)).rowcount

    def oldest_age(self) -> float:
        row = self._spool().execute("SELECT received FROM spool WHERE id > ? ORDER BY id LIMIT 1",
                                    (self._drained,)).fetchone()
        return time.time() - row[0] if row else 0.0

    # --- aggregator thread ------------------------------------------------------------

    def dirty(self, limit: int = 1000) -> list[tuple[str, int, int]]:
        """Devices whose rollups need recomputing: (device, oldest changed ts, newest changed ts)."""
        return self._state().execute("SELECT device, min_ts, max_ts FROM dirty LIMIT ?", (limit,)).fetchall()

    def clean(self, done: Sequence[tuple[str, int, int]]) -> None:
        """Forget spans whose rollups were recomputed, unless more changes arrived meanwhile."""
        conn = self._state()
        with conn:
            conn.executemany("DELETE FROM dirty WHERE device = ? AND min_ts = ? AND max_ts = ?", done)

    def close(self) -> None:
        for name in ("spool", "state"):
            conn = getattr(self._local, name, None)
            if conn is not None:
                conn.close()
                setattr(self._local, name, None)
