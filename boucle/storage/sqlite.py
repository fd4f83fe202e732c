"""Embedded store: one SQLite file in WAL mode (a writer and many readers at once)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import msgspec

from boucle import rollup
from boucle.consent import Consent
from boucle.ledger import LedgerEntry
from boucle.private_files import create_private_file
from boucle.protocol import (
    INTEGER_FIELDS,
    MEASUREMENT_FIELDS,
    ROW_FIELDS,
    Reading,
    ReadingRow,
    reading_row,
)
from boucle.rollup import (
    DAY_COLUMNS,
    MONTH_SLOT_COLUMNS,
    MONTH_SUM_COLUMNS,
    DayRow,
    MonthRow,
    MonthSlots,
    row_digest,
)
from boucle.storage import (
    RECEIVED,
    ROLLUP_TABLES,
    SIG_CHECKED,
    DeadLetter,
    DeviceState,
    ReadingMarks,
    StoredReading,
    check_fields,
    ledger_checks,
    ledger_sites,
    ledger_sites_text,
)
from boucle.storage.dead_letters import (
    DeadLetterBounds,
    DeadLetterTrim,
    letter_size,
    oldest_to_drop,
    trim_letters,
)


def _column_type(field: str) -> str:
    return "INTEGER" if field in INTEGER_FIELDS else "REAL"


# The readings table has a column per reading field of the device kinds (boucle_fw.kinds):
# a store made before a field existed gains its column when opened (_add_field_columns).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    device TEXT NOT NULL, boot INTEGER NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL,
    {reading_columns}, received REAL NOT NULL, sig_checked INTEGER,
    PRIMARY KEY (device, boot, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS readings_by_time ON readings (device, ts);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY, received REAL NOT NULL, topic TEXT NOT NULL, error TEXT NOT NULL,
    path TEXT NOT NULL, message TEXT NOT NULL, payload BLOB NOT NULL, key TEXT,
    device TEXT NOT NULL DEFAULT '', size INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_by_key ON dead_letters (key) WHERE key != '';
CREATE TABLE IF NOT EXISTS device_state (
    device TEXT NOT NULL, channel TEXT NOT NULL, doc TEXT NOT NULL, received REAL NOT NULL,
    PRIMARY KEY (device, channel)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_days (
    device TEXT NOT NULL, day INTEGER NOT NULL, {day_columns}, digest INTEGER,
    PRIMARY KEY (device, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_months (
    device TEXT NOT NULL, month INTEGER NOT NULL, {month_columns}, digest INTEGER,
    PRIMARY KEY (device, month)
) WITHOUT ROWID;
-- meters' slots apart: a year's sums read 12,000 small rows without their 12 KB of slots
CREATE TABLE IF NOT EXISTS rollup_month_slots (
    device TEXT NOT NULL, month INTEGER NOT NULL, {slot_columns}, digest INTEGER,
    PRIMARY KEY (device, month)
);
-- the daily ledger (boucle.ledger): one chain of entries per territory, appended, never rewritten
CREATE TABLE IF NOT EXISTS ledger (
    territory TEXT NOT NULL, seq INTEGER NOT NULL, day INTEGER NOT NULL, version INTEGER NOT NULL,
    count INTEGER NOT NULL, root BLOB NOT NULL, prev BLOB NOT NULL, digest BLOB NOT NULL,
    sealed_at REAL NOT NULL, sites TEXT NOT NULL,
    PRIMARY KEY (territory, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS consent_log (
    site TEXT NOT NULL, at REAL NOT NULL, author TEXT NOT NULL, shares TEXT NOT NULL, resolution_s INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('data_version', 0);
""".format(reading_columns=", ".join(f"{name} {_column_type(name)}" for name in MEASUREMENT_FIELDS),
           day_columns=", ".join(f"{c} BLOB NOT NULL" for c in DAY_COLUMNS),
           month_columns=", ".join(f"{c} BLOB NOT NULL" for c in MONTH_SUM_COLUMNS),
           slot_columns=", ".join(f"{c} BLOB NOT NULL" for c in MONTH_SLOT_COLUMNS))
# The rows go in as one JSON array that SQLite unpacks itself: one statement, one
# sqlite3_step, so the GIL is released for the whole batch. (executemany binds and steps
# row by row, retaking the GIL each time from the busy MQTT thread: measured 10-40 % slower
# gateway ingest.) Values survive the trip exactly: integers as integers, and the wire's
# decimals parse back to the same doubles (tests/gateway/test_sqlite_rows.py).
# Dead-letter bounds (trim_dead_letters): a tally per device kept by triggers, so checking
# the bounds after a batch reads a few rows, never the letters; indexes with the size, so
# finding the oldest to drop never reads a letter (its payload spills to overflow pages).
# One statement each: the migration runs them inside one BEGIN IMMEDIATE (a script would commit).
_DEAD_LETTER_BOUNDS = (
    "CREATE INDEX IF NOT EXISTS dead_letters_by_device ON dead_letters (device, id, size)",
    "CREATE INDEX IF NOT EXISTS dead_letters_by_age ON dead_letters (id, size)",
    """CREATE TABLE IF NOT EXISTS dead_letter_tally (
    device TEXT PRIMARY KEY, letters INTEGER NOT NULL, bytes INTEGER NOT NULL
) WITHOUT ROWID""",
    """CREATE TRIGGER IF NOT EXISTS dead_letter_kept AFTER INSERT ON dead_letters BEGIN
    INSERT INTO dead_letter_tally VALUES (NEW.device, 1, NEW.size)
    ON CONFLICT (device) DO UPDATE SET letters = letters + 1, bytes = bytes + excluded.bytes;
END""",
    """CREATE TRIGGER IF NOT EXISTS dead_letter_dropped AFTER DELETE ON dead_letters BEGIN
    UPDATE dead_letter_tally SET letters = letters - 1, bytes = bytes - OLD.size WHERE device = OLD.device;
END""",
)
_ROWS_JSON = msgspec.json.Encoder()
_COLUMN = "value ->> {}" if sqlite3.sqlite_version_info >= (3, 38) else "json_extract(value, '$[{}]')"
_INSERT = (
    f"INSERT OR IGNORE INTO readings ({', '.join(ROW_FIELDS)}, received, sig_checked) "
    f"SELECT {', '.join(_COLUMN.format(i) for i in range(len(ROW_FIELDS)))}, ?, ? FROM json_each(?)"
)


class SQLiteStore:
    """Store on SQLite. Thread-safe: one connection per thread, WAL journal."""

    dedups = True  # readings are keyed by (device, boot, seq): a repeat is not stored

    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            create_private_file(self.path)  # 0600: readings and dead-letter payloads are nobody else's
        self._local = threading.local()
        with self._conn() as conn:
            conn.executescript(_SCHEMA)
            _add_field_columns(conn)
            _bound_dead_letters(conn)
            _digest_rollups(conn)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
            _use_wal(conn)
            # FULL: a commit is on disk before the gateway acks the MQTT message.
            conn.execute("PRAGMA synchronous=FULL")
            # Reads map the file instead of copying pages through SQLite's cache: a year's
            # meter slots (tens of MB) read about a third faster (measured in bench.indicators_bench).
            conn.execute("PRAGMA mmap_size=268435456")
            self._local.conn = conn
        return conn

    def write_readings(self, readings: Sequence[Reading], received: float) -> int:
        return self.write_rows([reading_row(r) for r in readings], received)

    def write_rows(self, rows: Sequence[ReadingRow], received: float, checked: Collection[str] = ()) -> int:
        conn = self._conn()
        with conn:
            before = conn.total_changes
            if checked:  # SIG_CHECKED 1 for those devices' rows, null for the others'
                signed = [r for r in rows if r[0] in checked]
                if signed:
                    conn.execute(_INSERT, (float(received), 1, _ROWS_JSON.encode(signed)))
                rows = [r for r in rows if r[0] not in checked]
            if rows:
                conn.execute(_INSERT, (float(received), None, _ROWS_JSON.encode(rows)))
            new = conn.total_changes - before
            if new:
                conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'data_version'")
        return new

    def stored_rows(self, keys: Sequence[tuple[str, int, int]]) -> dict[tuple[str, int, int], ReadingRow]:
        """The stored rows of these identities (device, boot, seq), for those stored."""
        cols = ", ".join(f"r.{name}" for name in ROW_FIELDS)
        found = self._conn().execute(
            f"SELECT {cols} FROM json_each(?) AS k JOIN readings AS r ON r.device = {_COLUMN.format(0)} "
            f"AND r.boot = {_COLUMN.format(1)} AND r.seq = {_COLUMN.format(2)}", (_ROWS_JSON.encode(keys),))
        return {row[:3]: row for row in found}

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        conn = self._conn()
        with conn:
            conn.executemany(
                "INSERT OR IGNORE INTO dead_letters (received, topic, error, path, message, payload, key, device, size) "
                "VALUES (?,?,?,?,?,?,?,?,?)",
                [(d.received, d.topic, d.error, d.path, d.message, d.payload, d.key, d.device, letter_size(d))
                 for d in letters],
            )

    def trim_dead_letters(self, bounds: DeadLetterBounds) -> DeadLetterTrim:
        conn = self._conn()
        with conn:
            tally = {d: (n, size) for d, n, size in conn.execute(
                "SELECT device, letters, bytes FROM dead_letter_tally WHERE letters > 0")}
            return trim_letters(bounds, tally, lambda device, *limits: _drop_oldest(conn, device, *limits))

    def write_device_states(self, states: Sequence[DeviceState]) -> None:
        conn = self._conn()
        with conn:
            conn.executemany(
                "INSERT OR REPLACE INTO device_state (device, channel, doc, received) VALUES (?,?,?,?)",
                [(s.device, s.channel, json.dumps(s.doc), s.received) for s in states],
            )

    def device_states(self, devices: Sequence[str]) -> dict[str, dict[str, DeviceState]]:
        conn = self._conn()
        out: dict[str, dict[str, DeviceState]] = {}
        for device in devices:
            for channel, doc, received in conn.execute(
                "SELECT channel, doc, received FROM device_state WHERE device = ?", (device,)
            ):
                out.setdefault(device, {})[channel] = DeviceState(device, channel, json.loads(doc), received)
        return out

    def readings(self, device: str, start: int, end: int, fields: Sequence[str],
                 after: bool = False) -> list[StoredReading]:
        check_fields(fields)
        cols = ", ".join(fields)
        conn = self._conn()
        base = conn.execute(
            f"SELECT ts, boot, seq, {cols} FROM readings WHERE device = ? AND ts < ? "
            "ORDER BY ts DESC, boot DESC, seq DESC LIMIT 1", (device, start),
        ).fetchall()
        rows = conn.execute(
            f"SELECT ts, boot, seq, {cols} FROM readings WHERE device = ? AND ts >= ? AND ts < ? "
            "ORDER BY ts, boot, seq", (device, start, end),
        ).fetchall()
        if after:
            rows += conn.execute(
                f"SELECT ts, boot, seq, {cols} FROM readings WHERE device = ? AND ts >= ? "
                "ORDER BY ts, boot, seq LIMIT 1", (device, end),
            ).fetchall()
        return [StoredReading(r[0], r[1], r[2], dict(zip(fields, r[3:]))) for r in base + rows]

    def reading_counts(self, devices: Sequence[str], start: int, end: int) -> dict[str, int]:
        conn = self._conn()
        out = {d: 0 for d in devices}
        for device in devices:
            (n,) = conn.execute(
                "SELECT count(*) FROM readings WHERE device = ? AND ts >= ? AND ts < ?", (device, start, end)
            ).fetchone()
            out[device] = n
        return out

    def last_seen(self, devices: Sequence[str]) -> dict[str, tuple[int, float]]:
        conn = self._conn()
        out = {}
        for device in devices:
            row = conn.execute(
                "SELECT ts, received FROM readings WHERE device = ? ORDER BY ts DESC LIMIT 1", (device,)
            ).fetchone()
            if row:
                out[device] = (row[0], row[1])
        return out

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        rows = self._conn().execute(
            "SELECT received, topic, error, path, message, payload, coalesce(key, ''), device FROM dead_letters "
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [DeadLetter(*r) for r in rows]

    def next_reading_ts(self, device: str, after: int) -> int | None:
        row = self._conn().execute("SELECT min(ts) FROM readings WHERE device = ? AND ts > ?", (device, after)).fetchone()
        return row[0]

    def reading_marks(self, since: Mapping[str, int]) -> dict[str, ReadingMarks]:
        conn = self._conn()
        fields = (*rollup.FIELDS, RECEIVED)
        out = {}
        for device, t in since.items():
            count, received = conn.execute("SELECT count(*), max(received) FROM readings WHERE device = ? AND ts >= ?",
                                           (device, t)).fetchone()
            row = conn.execute(f"SELECT ts, boot, seq, {', '.join(fields)} FROM readings WHERE device = ? AND ts < ? "
                               "ORDER BY ts DESC, boot DESC, seq DESC LIMIT 1", (device, t)).fetchone()
            before = StoredReading(row[0], row[1], row[2], dict(zip(fields, row[3:]))) if row else None
            out[device] = ReadingMarks(count, received, before)
        return out

    def write_rollups(self, days: Sequence[DayRow], months: Sequence[MonthRow]) -> None:
        conn = self._conn()
        with conn:
            for table, rows in (("rollup_days", days), ("rollup_months", months),
                                ("rollup_month_slots", [m for m in months if m.slots is not None])):
                if rows:
                    columns = ROLLUP_TABLES[table]
                    conn.executemany(
                        f"INSERT OR REPLACE INTO {table} (device, {_START[table]}, {', '.join(columns)}, digest) "
                        f"VALUES ({', '.join('?' * (len(columns) + 3))})",
                        [(r[0], r[1], *(cells := [getattr(r, c) for c in columns]), row_digest(cells)) for r in rows])
            conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'data_version'")

    def _rollup_rows(self, table: str, devices: Sequence[str], start: int, end: int):
        return self._conn().execute(
            f"SELECT device, {_START[table]}, {', '.join(ROLLUP_TABLES[table])} FROM {table} WHERE device IN "
            f"(SELECT value FROM json_each(?)) AND {_START[table]} >= ? AND {_START[table]} < ? "
            f"ORDER BY device, {_START[table]}", (json.dumps(sorted(set(devices))), start, end))

    def day_rollups(self, devices: Sequence[str], start: int, end: int) -> list[DayRow]:
        return list(map(DayRow._make, self._rollup_rows("rollup_days", devices, start, end)))

    def month_rollups(self, devices: Sequence[str], start: int, end: int) -> list[MonthRow]:
        return [MonthRow(*row) for row in self._rollup_rows("rollup_months", devices, start, end)]

    def month_slots(self, devices: Sequence[str], start: int, end: int) -> list[MonthSlots]:
        return list(map(MonthSlots._make, self._rollup_rows("rollup_month_slots", devices, start, end)))

    def rollup_digests(self, table: str, devices: Sequence[str], start: int, end: int
                       ) -> dict[tuple[str, int], int | None]:
        return {(d, t): digest for d, t, digest in self._conn().execute(
            f"SELECT device, {_START[table]}, digest FROM {table} WHERE device IN (SELECT value FROM json_each(?)) "
            f"AND {_START[table]} >= ? AND {_START[table]} < ?", (json.dumps(sorted(set(devices))), start, end))}

    def append_ledger(self, entry: LedgerEntry) -> bool:
        conn = self._conn()
        with conn:
            added = conn.execute(
                "INSERT OR IGNORE INTO ledger VALUES (?,?,?,?,?,?,?,?,?,?)",
                (entry.territory, entry.seq, entry.day, entry.version, entry.count, entry.root, entry.prev,
                 entry.digest, entry.sealed_at, ledger_sites_text(entry.sites, entry.checks))).rowcount
            if added:
                conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'data_version'")
        return bool(added)

    def ledger(self, territory: str) -> list[LedgerEntry]:
        rows = self._conn().execute(
            "SELECT territory, seq, day, version, count, root, prev, digest, sealed_at, sites FROM ledger "
            "WHERE territory = ? ORDER BY seq", (territory,))
        return [LedgerEntry(*row[:9], ledger_sites(row[9]), ledger_checks(row[9])) for row in rows]

    def append_consent(self, consent: Consent) -> None:
        conn = self._conn()
        with conn:
            conn.execute("INSERT INTO consent_log VALUES (?,?,?,?,?)",
                         (consent.site, consent.at, consent.author, consent.shares, consent.resolution_s))
            conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'data_version'")

    def consents(self) -> list[Consent]:
        return [Consent(*row) for row in self._conn().execute(
            "SELECT site, at, author, shares, resolution_s FROM consent_log ORDER BY at, rowid")]

    def data_version(self) -> int:
        (v,) = self._conn().execute("SELECT value FROM meta WHERE key = 'data_version'").fetchone()
        return v

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


BUSY_TIMEOUT_S = 30.0


def _use_wal(conn: sqlite3.Connection) -> None:
    """Put the file in WAL mode (it stays so). Switching takes an exclusive lock and SQLite
    answers "database is locked" at once, without waiting, while another process holds the
    file: two services opening a new store together (the gateway and the API of `boucle
    up`) would fail one of them. So the switch is retried for as long as a busy write waits."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _add_field_columns(conn: sqlite3.Connection) -> None:
    """The columns of reading fields a store written before them lacks (empty for its
    rows: those readings did not have the field). Nothing else changes."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(readings)")}
    for name in MEASUREMENT_FIELDS:
        if name not in columns:
            _add_column(conn, "readings", f"{name} {_column_type(name)}")
    if SIG_CHECKED not in columns:  # readings stored before it: not known to be checked
        _add_column(conn, "readings", f"{SIG_CHECKED} INTEGER")


def _add_column(conn: sqlite3.Connection, table: str, column: str) -> None:
    """ALTER TABLE ... ADD COLUMN, where another process opening the store may add it first."""
    try:
        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
    except sqlite3.OperationalError as exc:
        if "duplicate column" not in str(exc):
            raise


def _bound_dead_letters(conn: sqlite3.Connection) -> None:
    """The dead-letter bounds' columns, indexes, tally and triggers; a store written before
    them gets its letters' device (the topic's second-to-last segment) and size.

    One write transaction, taken before looking: processes opening an old store together
    (a gateway and the API) migrate it one after the other, the later ones finding it done."""
    conn.commit()
    level, conn.isolation_level = conn.isolation_level, None  # our BEGIN, not the module's
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(dead_letters)")}
            if "device" not in columns:
                conn.execute("ALTER TABLE dead_letters ADD COLUMN device TEXT NOT NULL DEFAULT ''")
                conn.execute("ALTER TABLE dead_letters ADD COLUMN size INTEGER NOT NULL DEFAULT 0")
                rows = conn.execute("SELECT id, received, topic, error, path, message, payload, coalesce(key, '') "
                                    "FROM dead_letters").fetchall()
                letters = [(row[0], DeadLetter(*row[1:], device=_topic_device(row[2]))) for row in rows]
                conn.executemany("UPDATE dead_letters SET device = ?, size = ? WHERE id = ?",
                                 [(d.device, letter_size(d), id_) for id_, d in letters])
            fresh = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'dead_letter_tally'").fetchone() is None
            for statement in _DEAD_LETTER_BOUNDS:
                conn.execute(statement)
            if fresh:
                conn.execute("INSERT INTO dead_letter_tally "
                             "SELECT device, count(*), sum(size) FROM dead_letters GROUP BY device")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.isolation_level = level


_START = {"rollup_days": "day", "rollup_months": "month", "rollup_month_slots": "month"}


def _digest_rollups(conn: sqlite3.Connection) -> None:
    """Rollup rows written before their digests get them (one pass, on the first open)."""
    for table, columns in ROLLUP_TABLES.items():
        if "digest" in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
            continue
        _add_column(conn, table, "digest INTEGER")  # both may fill the digests: the same values
        rows = conn.execute(f"SELECT device, {_START[table]}, {', '.join(columns)} FROM {table}").fetchall()
        conn.executemany(f"UPDATE {table} SET digest = ? WHERE device = ? AND {_START[table]} = ?",
                         [(row_digest(row[2:]), row[0], row[1]) for row in rows])


def _topic_device(topic: str) -> str:
    parts = topic.split("/")
    return parts[-2] if len(parts) >= 3 else ""


def _drop_oldest(conn: sqlite3.Connection, device: str | None, letters: int, size: int,
                 max_letters: int, max_bytes: int) -> tuple[int, int]:
    """Delete the oldest letters of `device` (None: of all) until the rest fits the
    bounds; how many, and their bytes. Reads (id, size) from a covering index."""
    where, params = ("WHERE device = ?", (device,)) if device is not None else ("", ())
    oldest = conn.execute(f"SELECT id, size FROM dead_letters {where} ORDER BY id", params)
    cut, drop, freed = 0, 0, 0
    while True:
        chunk = oldest.fetchmany(1000)
        n = oldest_to_drop(letters - drop, size - freed, max_letters, max_bytes, (s for _, s in chunk))
        if n:
            cut = chunk[n - 1][0]
            drop += n
            freed += sum(s for _, s in chunk[:n])
        if n < len(chunk) or not chunk:
            break
    oldest.close()
    if drop:
        # FAST: no rewrite of the freed pages with zeros, which this build does by default
        # (secure_delete) and which cost as much as writing the 8 KB payloads.
        (secure,) = conn.execute("PRAGMA secure_delete").fetchone()
        conn.execute("PRAGMA secure_delete = FAST")
        try:
            conn.execute(f"DELETE FROM dead_letters {where} {'AND' if where else 'WHERE'} id <= ?", (*params, cut))
        finally:
            conn.execute(f"PRAGMA secure_delete = {int(secure)}")
    return drop, freed
