"""Durable spool between MQTT and storage: SQLite in WAL mode, on the gateway's disk.

A message is acknowledged to the broker only once it is committed here (synchronous=FULL:
on disk, surviving SIGKILL and power loss). The drain takes messages oldest first,
stores them, and deletes them only after the store confirmed. The spool also keeps the
dedup index (device, boot, seq), so repeats are dropped across restarts, and the
devices whose windows must be recomputed (committed with the readings, so a crash
never leaves a window stale).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT, received REAL NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (
    device TEXT NOT NULL, boot INTEGER NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL,
    PRIMARY KEY (device, boot, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_by_time ON seen (ts);
CREATE TABLE IF NOT EXISTS dirty (device TEXT PRIMARY KEY, min_ts INTEGER NOT NULL, max_ts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS seen_letters (key TEXT PRIMARY KEY, received REAL NOT NULL) WITHOUT ROWID;
"""


_MARK_DIRTY = ("INSERT INTO dirty VALUES (?, ?, ?) ON CONFLICT (device) DO UPDATE SET "
               "min_ts = min(min_ts, excluded.min_ts), max_ts = max(max_ts, excluded.max_ts)")


def _spans(seen: Iterable[tuple[str, int, int, int]]) -> list[tuple[str, int, int]]:
    spans: dict[str, tuple[int, int]] = {}
    for device, _boot, _seq, ts in seen:
        lo, hi = spans.get(device, (ts, ts))
        spans[device] = (min(lo, ts), max(hi, ts))
    return [(d, lo, hi) for d, (lo, hi) in spans.items()]


@dataclass(frozen=True, slots=True)
class Spooled:
    id: int
    received: float
    topic: str
    payload: bytes


class SpoolFull(Exception):
    """The spool reached its bound: stop taking messages (the broker keeps them)."""


class Spool:
    """A bounded, durable FIFO of raw MQTT messages plus the dedup index."""

    def __init__(self, path: str | Path, max_rows: int):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.max_rows = max_rows
        self._local = threading.local()
        with self._conn() as conn:
            conn.executescript(_SCHEMA)
        self._depth = self._count()
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        return conn

    def _count(self) -> int:
        return self._conn().execute("SELECT count(*) FROM spool").fetchone()[0]

    @property
    def depth(self) -> int:
        return self._depth

    def append(self, messages: Sequence[tuple[float, str, bytes]]) -> None:
        """Commit messages durably; raise SpoolFull (committing nothing) past the bound."""
        if self._depth + len(messages) > self.max_rows:
            raise SpoolFull(f"spool holds {self._depth} messages, its bound is {self.max_rows}")
        conn = self._conn()
        with conn:
            conn.executemany("INSERT INTO spool (received, topic, payload) VALUES (?, ?, ?)", messages)
        with self._lock:
            self._depth += len(messages)

    def oldest(self, limit: int) -> list[Spooled]:
        rows = self._conn().execute(
            "SELECT id, received, topic, payload FROM spool ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [Spooled(*r) for r in rows]

    def remove(self, ids: Iterable[int], seen: Sequence[tuple[str, int, int, int]] = (),
               letters: Iterable[tuple[str, float]] = ()) -> None:
        """Delete drained messages and record their readings and dead letters as seen, in one transaction."""
        ids = list(ids)
        conn = self._conn()
        with conn:
            conn.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?, ?, ?)", seen)
            conn.executemany("INSERT OR IGNORE INTO seen_letters VALUES (?, ?)", letters)
            conn.executemany(_MARK_DIRTY, _spans(seen))
            conn.executemany("DELETE FROM spool WHERE id = ?", [(i,) for i in ids])
        with self._lock:
            self._depth -= len(ids)

    def unseen(self, keys: Sequence[tuple[str, int, int]]) -> set[tuple[str, int, int]]:
        """Which of these reading identities the gateway has not stored yet."""
        conn = self._conn()
        out = set()
        for key in keys:
            if conn.execute("SELECT 1 FROM seen WHERE device = ? AND boot = ? AND seq = ?", key).fetchone() is None:
                out.add(key)
        return out

    def dirty(self, limit: int = 1000) -> list[tuple[str, int, int]]:
        """Devices whose windows need recomputing: (device, oldest changed ts, newest changed ts)."""
        return self._conn().execute("SELECT device, min_ts, max_ts FROM dirty LIMIT ?", (limit,)).fetchall()

    def mark_dirty(self, spans: Iterable[tuple[str, int, int]]) -> None:
        conn = self._conn()
        with conn:
            conn.executemany(_MARK_DIRTY, spans)

    def clean(self, done: Iterable[tuple[str, int, int]]) -> None:
        """Forget spans that were recomputed, unless more changes arrived meanwhile."""
        conn = self._conn()
        with conn:
            conn.executemany("DELETE FROM dirty WHERE device = ? AND min_ts = ? AND max_ts = ?", done)

    def unseen_letters(self, keys: Sequence[str]) -> set[str]:
        """Which of these dead-letter keys (content hashes) are not stored yet."""
        conn = self._conn()
        return {k for k in keys if conn.execute("SELECT 1 FROM seen_letters WHERE key = ?", (k,)).fetchone() is None}

    def forget_before(self, ts: int) -> int:
        """Drop dedup entries older than `ts` (a bounded index; see docs/gateway.md)."""
        conn = self._conn()
        with conn:
            conn.execute("DELETE FROM seen_letters WHERE received < ?", (ts,))
            return conn.execute("DELETE FROM seen WHERE ts < ?", (ts,)).rowcount

    def oldest_age(self) -> float:
        row = self._conn().execute("SELECT received FROM spool ORDER BY id LIMIT 1").fetchone()
        return time.time() - row[0] if row else 0.0

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
