"""The API's own records, in one SQLite file beside its other state: alerts (open,
acknowledged, resolved, with times), their pending deliveries, and proposed exchanges.

Measurements live in the store (SQLite or InfluxDB); these are a few rows a day that are
updated in place and read by id, which a time-series database does badly, so both stack
variants keep them here (docs/api.md "Alerts"). Thread-safe: one connection per thread.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from boucle.private_files import create_private_file
from boucle.storage.sqlite import BUSY_TIMEOUT_S, _use_wal
from cloud.alerts.rules import Finding
from cloud.alerts.texts import messages

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL, rule TEXT NOT NULL, subject TEXT NOT NULL,
    territory TEXT NOT NULL, site TEXT NOT NULL, severity TEXT NOT NULL, status TEXT NOT NULL,
    message TEXT NOT NULL, detail TEXT NOT NULL, opened REAL NOT NULL, updated REAL NOT NULL,
    acknowledged REAL, acknowledged_by TEXT, resolved REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_live ON alerts (key) WHERE status != 'resolved';
CREATE INDEX IF NOT EXISTS alerts_by_territory ON alerts (territory, opened);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY, alert INTEGER NOT NULL, channel TEXT NOT NULL, body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL, last_error TEXT, done REAL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_at) WHERE done IS NULL;
CREATE TABLE IF NOT EXISTS exchanges (
    id INTEGER PRIMARY KEY, territory TEXT NOT NULL, from_site TEXT NOT NULL, to_site TEXT NOT NULL,
    material TEXT NOT NULL, kg REAL NOT NULL, pickup_from REAL NOT NULL, pickup_until REAL NOT NULL,
    distance_km REAL NOT NULL, kind TEXT NOT NULL, note TEXT NOT NULL, status TEXT NOT NULL,
    created REAL NOT NULL, created_by TEXT NOT NULL, updated REAL NOT NULL, history TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS exchanges_by_territory ON exchanges (territory, created);
"""

ALERT_COLUMNS = ("id", "rule", "subject", "territory", "site", "severity", "status", "message", "detail",
                 "opened", "updated", "acknowledged", "acknowledged_by", "resolved")
EXCHANGE_COLUMNS = ("id", "territory", "from_site", "to_site", "material", "kg", "pickup_from", "pickup_until",
                    "distance_km", "kind", "note", "status", "created", "created_by", "updated", "history")

EXCHANGE_STEPS = {
    "proposed": ("accepted", "declined", "cancelled"),
    "accepted": ("done", "cancelled"),
    "declined": (), "cancelled": (), "done": (),
}
"""Exchange status → the statuses it may change to."""


@dataclass(frozen=True)
class Delivery:
    id: int
    alert: int
    channel: str
    body: str
    attempts: int


class Book:
    """Alerts, deliveries and exchanges in one SQLite file (created 0600 on first use)."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._local = threading.local()
        self._ready = False
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            with self._lock:
                if not self._ready and self.path != ":memory:":
                    create_private_file(self.path)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
            conn.row_factory = sqlite3.Row
            _use_wal(conn)
            with self._lock:
                if not self._ready:
                    conn.executescript(_SCHEMA)
                    self._ready = True
            self._local.conn = conn
        return conn

    # --- alerts ---------------------------------------------------------------------

    def apply(self, findings: Iterable[Finding], evaluated: set[tuple[str, str]], now: float,
              channels: Sequence[str] = ()) -> list[dict]:
        """Bring the alerts up to date with one evaluation: a new finding opens an alert, a
        live alert (open or acknowledged) of an evaluated (territory, rule) that was not
        found again is resolved. Each opening and resolution is queued for delivery on
        every channel; returns them (alerts as `alert()` gives them)."""
        conn = self._conn()
        changed: list[int] = []
        with conn:
            live = {r["key"]: r for r in conn.execute("SELECT * FROM alerts WHERE status != 'resolved'")}
            found = set()
            for f in findings:
                found.add(f.key)
                row = live.get(f.key)
                if row is None:
                    cur = conn.execute(
                        "INSERT INTO alerts (key, rule, subject, territory, site, severity, status, message, detail,"
                        " opened, updated) VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?, ?, ?)",
                        (f.key, f.rule, f.subject, f.territory, f.site, f.severity, f.message,
                         json.dumps(f.detail), now, now))
                    changed.append(cur.lastrowid)
                else:
                    conn.execute("UPDATE alerts SET message = ?, detail = ?, severity = ?, updated = ? WHERE id = ?",
                                 (f.message, json.dumps(f.detail), f.severity, now, row["id"]))
            for key, row in live.items():
                if key not in found and (row["territory"], row["rule"]) in evaluated:
                    conn.execute("UPDATE alerts SET status = 'resolved', resolved = ?, updated = ? WHERE id = ?",
                                 (now, now, row["id"]))
                    changed.append(row["id"])
            events = [self._alert(conn, i) for i in changed]
            self._queue(conn, events, channels, now)
        return events

    def acknowledge(self, alert_id: int, by: str, now: float, channels: Sequence[str] = ()) -> dict | None:
        """Mark an open alert acknowledged (by a key id); an acknowledged or resolved one is
        left as it is. None when there is no such alert."""
        conn = self._conn()
        with conn:
            cur = conn.execute("UPDATE alerts SET status = 'acknowledged', acknowledged = ?, acknowledged_by = ?,"
                               " updated = ? WHERE id = ? AND status = 'open'", (now, by, now, alert_id))
            alert = self._alert(conn, alert_id)
            if cur.rowcount and alert is not None:
                self._queue(conn, [alert], channels, now)
        return alert

    def alert(self, alert_id: int) -> dict | None:
        return self._alert(self._conn(), alert_id)

    def alerts(self, territories: Sequence[str] | None, status: str | None = None, limit: int = 100) -> list[dict]:
        """Alerts newest first (of these territories; None: all), optionally of one status."""
        return [_alert_dict(r) for r in self._listing("alerts", ALERT_COLUMNS, "opened", territories, status, limit)]

    def _listing(self, table: str, columns: Sequence[str], newest: str, territories: Sequence[str] | None,
                 status: str | None, limit: int) -> list[sqlite3.Row]:
        where, args = [], []
        if territories is not None:
            where.append(f"territory IN ({','.join('?' * len(territories))})")
            args += list(territories)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        sql = f"SELECT {', '.join(columns)} FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self._conn().execute(sql + f" ORDER BY {newest} DESC, id DESC LIMIT ?", (*args, limit)).fetchall()

    @staticmethod
    def _alert(conn: sqlite3.Connection, alert_id: int) -> dict | None:
        row = conn.execute(f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return _alert_dict(row) if row else None

    # --- deliveries -------------------------------------------------------------------

    @staticmethod
    def _queue(conn: sqlite3.Connection, alerts: Sequence[dict], channels: Sequence[str], now: float) -> None:
        conn.executemany("INSERT INTO deliveries (alert, channel, body, next_at) VALUES (?, ?, ?, ?)",
                         [(a["id"], ch, json.dumps(a, sort_keys=True), now) for a in alerts for ch in channels])

    def due(self, now: float, limit: int = 50) -> list[Delivery]:
        """Deliveries to try now, oldest first."""
        rows = self._conn().execute(
            "SELECT id, alert, channel, body, attempts FROM deliveries WHERE done IS NULL AND next_at <= ?"
            " ORDER BY id LIMIT ?", (now, limit))
        return [Delivery(*r) for r in rows]

    def delivered(self, delivery_id: int, now: float) -> None:
        with self._conn() as conn:
            conn.execute("UPDATE deliveries SET done = ?, attempts = attempts + 1 WHERE id = ?", (now, delivery_id))

    def failed(self, delivery_id: int, error: str, next_at: float | None) -> None:
        """A failed attempt; `next_at` None gives up (kept, marked done with its error)."""
        with self._conn() as conn:
            conn.execute("UPDATE deliveries SET attempts = attempts + 1, last_error = ?, next_at = ?,"
                         " done = CASE WHEN ? IS NULL THEN -1 ELSE NULL END WHERE id = ?",
                         (error[:500], next_at if next_at is not None else 0, next_at, delivery_id))

    # --- exchanges ----------------------------------------------------------------------

    def propose(self, exchange: dict, by: str, now: float) -> dict:
        """Record a proposed exchange (the EXCHANGE_COLUMNS a caller gives, without id,
        status, times and history)."""
        conn = self._conn()
        with conn:
            cur = conn.execute(
                "INSERT INTO exchanges (territory, from_site, to_site, material, kg, pickup_from, pickup_until,"
                " distance_km, kind, note, status, created, created_by, updated, history)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'proposed', ?, ?, ?, ?)",
                (exchange["territory"], exchange["from_site"], exchange["to_site"], exchange["material"],
                 exchange["kg"], exchange["pickup_from"], exchange["pickup_until"], exchange["distance_km"],
                 exchange["kind"], exchange["note"], now, by, now,
                 json.dumps([{"status": "proposed", "at": now, "by": by}])))
        return self.exchange(cur.lastrowid)  # type: ignore[return-value]

    def exchange(self, exchange_id: int) -> dict | None:
        row = self._conn().execute(f"SELECT {', '.join(EXCHANGE_COLUMNS)} FROM exchanges WHERE id = ?",
                                   (exchange_id,)).fetchone()
        return _exchange_dict(row) if row else None

    def exchanges(self, territories: Sequence[str] | None, status: str | None = None, limit: int = 100) -> list[dict]:
        """Exchanges newest first (of these territories; None: all), optionally of one status."""
        return [_exchange_dict(r) for r in self._listing("exchanges", EXCHANGE_COLUMNS, "created", territories,
                                                         status, limit)]

    def set_exchange_status(self, exchange_id: int, status: str, by: str, now: float) -> dict:
        """Move an exchange to `status`; ValueError when its current status does not lead there."""
        conn = self._conn()
        with conn:
            row = conn.execute("SELECT status, history FROM exchanges WHERE id = ?", (exchange_id,)).fetchone()
            if row is None:
                raise LookupError(exchange_id)
            if status not in EXCHANGE_STEPS[row["status"]]:
                allowed = ", ".join(EXCHANGE_STEPS[row["status"]]) or "none: it is final"
                raise ValueError(f"a {row['status']} exchange cannot become {status} (allowed: {allowed})")
            history = [*json.loads(row["history"]), {"status": status, "at": now, "by": by}]
            conn.execute("UPDATE exchanges SET status = ?, updated = ?, history = ? WHERE id = ?",
                         (status, now, json.dumps(history), exchange_id))
        return self.exchange(exchange_id)  # type: ignore[return-value]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _alert_dict(row: sqlite3.Row) -> dict:
    out = dict(zip(ALERT_COLUMNS, row))
    out["detail"] = json.loads(out["detail"])
    out["messages"] = messages(out["rule"], out["subject"], out["detail"], out["message"])
    return out


def _exchange_dict(row: sqlite3.Row) -> dict:
    out = dict(zip(EXCHANGE_COLUMNS, row))
    out["history"] = json.loads(out["history"])
    return out
