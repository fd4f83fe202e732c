"""InfluxDB store over the v1-compatible HTTP API: `/write` (line protocol), `/query`
(InfluxQL), `/ping`. These are the endpoints InfluxDB 1.x, 2.x (with a DBRP mapping,
2.4+) and 3 Core all serve, so one adapter covers the three; Flux is not used.

influxdb-client provides the HTTP client, authentication headers, `Point` line-protocol
serialisation and ping. Its batching WriteApi is not used: it drops a batch once its
retries run out, and durability is the gateway spool's job — every write here is
synchronous and raises unless the server confirmed it.

Schema (docs/gateway.md): measurement `readings`, tags `device` `site` `territory`
`kind` and `channel` or `stream`, fields the reading's measurements plus `boot`, `seq`,
`received`; time = the reading's `ts`. The point key is (device, ts): rewriting a reading
gives the same point (idempotent). Two readings of one device in the same second would
share a point; devices read at most once a second.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import zlib
from collections.abc import Callable, Sequence
from itertools import groupby
from operator import itemgetter
from urllib.parse import parse_qs, urlparse

from influxdb_client import InfluxDBClient, Point, WritePrecision

from boucle.protocol import INTEGER_FIELDS, MEASUREMENT_FIELDS, Reading, ReadingRow, reading_row
from boucle.storage import WINDOW_VALUES, DeadLetter, DeviceState, MonthPack, StoredReading, Window
from boucle.storage.dead_letters import (
    DeadLetterBounds,
    DeadLetterTrim,
    letter_size,
    oldest_to_drop,
    trim_letters,
)

log = logging.getLogger("boucle.storage.influx")

_PRECISION = {"s": (WritePrecision.S, 1), "ms": (WritePrecision.MS, 10**3),
              "us": (WritePrecision.US, 10**6), "ns": (WritePrecision.NS, 10**9)}


class StoreError(Exception):
    """The store did not confirm a write or answer a query."""


_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n"})


def _tag(text: str) -> str:
    text = str(text).translate(_TAG_ESCAPES)
    return text + " " if text.endswith("\\") else text  # as influxdb_client does: a trailing \ escapes nothing


def _field_format(name: str) -> Callable[[float | int], str]:
    if name in INTEGER_FIELDS:
        return lambda v: f"{name}={int(v)}i"
    return lambda v: f"{name}={float(v)!r}"


_FIELD_FORMATS = tuple(_field_format(name) for name in MEASUREMENT_FIELDS)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class InfluxStore:
    """Store on InfluxDB's v1-compatible API."""

    dedups = False  # the gateway's dedup index drops repeats before they get here

    def __init__(self, url: str, database: str, token: str = "", precision: str = "s",
                 retention_policy: str = "", device_tags: Callable[[str], dict[str, str]] | None = None,
                 timeout_ms: int = 10_000):
        if precision not in _PRECISION:
            raise ValueError(f"BOUCLE_INFLUX_PRECISION={precision!r}: use s, ms, us or ns")
        self.url, self.database, self.rp = url, database, retention_policy
        self.precision, self._scale = precision, _PRECISION[precision][1]
        self.device_tags = device_tags or (lambda device: {})
        self._client = InfluxDBClient(url=url, token=token or None, org="-", timeout=timeout_ms)
        self._api = self._client.api_client
        self._headers = {"Authorization": f"Token {token}"} if token else {}
        try:
            self._query("CREATE DATABASE " + json.dumps(database), method="POST", database=None)
        except StoreError as exc:  # 2.x / 3: buckets and DBRP mappings are made by their own tools
            log.debug("CREATE DATABASE not accepted (%s); assuming the database/bucket exists", exc)

    # --- HTTP ----------------------------------------------------------------------

    def _call(self, path: str, method: str, params: list[tuple[str, str]], body: str | None = None) -> bytes:
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "text/plain; charset=utf-8"
        try:
            response = self._api.call_api(path, method, query_params=params, header_params=headers, body=body,
                                          auth_settings=[], _preload_content=False, _return_http_data_only=True)
        except Exception as exc:  # noqa: BLE001 - network, HTTP status, anything: not confirmed
            raise StoreError(f"InfluxDB {path} at {self.url}: {exc}") from None
        if response.status not in (200, 204):
            raise StoreError(f"InfluxDB {path} answered {response.status}: {response.data[:200]!r}")
        return response.data

    def ping(self) -> bool:
        return self._client.ping()

    def write_lines(self, lines: Sequence[str], precision: str = "") -> None:
        """Write line protocol synchronously; raises StoreError unless confirmed (204)."""
        if not lines:
            return
        params = [("db", self.database), ("precision", precision or self.precision)]
        if self.rp:
            params.append(("rp", self.rp))
        self._call("/write", "POST", params, "\n".join(lines) + "\n")

    def _query(self, q: str, method: str = "GET", database: str | None = "", epoch: str = "s") -> list[dict]:
        params = [("q", q), ("epoch", epoch)]
        if database is not None:
            params.append(("db", database or self.database))
        data = json.loads(self._call("/query", method, params) or b"{}")
        results = data.get("results", [])
        for result in results:
            if "error" in result:
                raise StoreError(f"InfluxQL error: {result['error']} in {q!r}")
        return results

    def query_series(self, q: str) -> list[dict]:
        """Run one InfluxQL statement; the series of its result."""
        results = self._query(q)
        return results[0].get("series", []) if results else []

    # --- Store interface ---------------------------------------------------------------

    def _t(self, ts: float) -> int:
        return round(ts * self._scale)

    def write_readings(self, readings: Sequence[Reading], received: float) -> int:
        return self.write_rows([reading_row(r) for r in readings], received)

    def write_rows(self, rows: Sequence[ReadingRow], received: float) -> int:
        # Line protocol formatted here rather than through influxdb_client's Point (about ten
        # times the cost a reading, on the gateway's hot path); Point's escaping and field
        # types are kept, and tests read every field and tag back from a real InfluxDB.
        got = f"received={float(received)!r}"
        lines = []
        for device, group in groupby(rows, key=itemgetter(0)):
            series = self._series(device)
            for row in group:
                fields = [fmt(v) for fmt, v in zip(_FIELD_FORMATS, row[4:]) if v is not None]
                fields.append(f"boot={row[1]}i,seq={row[2]}i,{got}")
                lines.append(f"{series} {','.join(fields)} {self._t(row[3])}")
        lines.append(f"meta version={time.time_ns()}i {self._t(time.time())}")
        self.write_lines(lines)
        return len(rows)

    def _series(self, device: str) -> str:
        """`readings,device=…,kind=…` with the device's tags, escaped and sorted."""
        tags = sorted({**self.device_tags(device), "device": device}.items())
        return "readings," + ",".join(f"{_tag(k)}={_tag(v)}" for k, v in tags if v != "")

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        # Series per device and error (bounded), not per letter: the letter's key is a
        # field, and its time the receipt in µs plus three digits from its key (ns), so two
        # letters of one device and error received in the same µs stay two points.
        lines = []
        for d in letters:
            p = (Point("dead_letters").tag("device", d.device).tag("error", d.error)
                 .field("topic", d.topic).field("path", d.path).field("message", d.message)
                 .field("payload_b64", base64.b64encode(d.payload).decode()).field("received", float(d.received))
                 .field("key", d.key).field("size", letter_size(d)))
            spread = zlib.crc32(d.key.encode()) % 1000
            lines.append(p.time(round(d.received * 10**6) * 1000 + spread, write_precision=WritePrecision.NS)
                         .to_line_protocol())
        self.write_lines(lines, "ns")

    def trim_dead_letters(self, bounds: DeadLetterBounds) -> DeadLetterTrim:
        # "received" is in every letter, "size" only in those written since the bounds.
        tally = {s.get("tags", {}).get("device") or "": (s["values"][0][1], s["values"][0][2] or 0)
                 for s in self.query_series('SELECT count("received"), sum("size") FROM "dead_letters" '
                                            'GROUP BY "device"')}
        return trim_letters(bounds, tally, self._drop_oldest)

    def _drop_oldest(self, device: str | None, letters: int, size: int, max_letters: int,
                     max_bytes: int) -> tuple[int, int]:
        """Delete the oldest letters of `device` (None: of all) until the rest fits the
        bounds; how many, and their bytes. (InfluxQL DELETE: InfluxDB 1.x and 2.x's v1
        API; not 3.)"""
        where = "" if device is None else f'"device" = {_quote(device)}'
        drop, freed, cut, offset = 0, 0, None, 0
        chunk = max(1000, letters - max_letters)
        while True:
            results = self._query(f'SELECT "size", "received" FROM "dead_letters" {"WHERE " + where if where else ""} '
                                  f"ORDER BY time LIMIT {chunk} OFFSET {offset}", epoch="ns")
            rows = results[0]["series"][0]["values"] if results and results[0].get("series") else []
            n = oldest_to_drop(letters - drop, size - freed, max_letters, max_bytes, (r[1] or 0 for r in rows))
            if n:
                cut = rows[n - 1][0]
                drop += n
                freed += sum(r[1] or 0 for r in rows[:n])
            if n < len(rows) or not rows:
                break
            offset += len(rows)
        if cut is not None:
            self._query(f'DELETE FROM "dead_letters" WHERE {where + " AND " if where else ""}time <= {cut}',
                        method="POST")
        return drop, freed

    def write_device_states(self, states: Sequence[DeviceState]) -> None:
        precision = _PRECISION[self.precision][0]
        self.write_lines([
            Point("device_state").tag("device", s.device).tag("channel", s.channel)
            .field("doc", json.dumps(s.doc)).time(self._t(s.received), write_precision=precision).to_line_protocol()
            for s in states])

    def readings(self, device: str, start: int, end: int, fields: Sequence[str]) -> list[StoredReading]:
        unknown = set(fields) - set(MEASUREMENT_FIELDS)
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}")
        cols = ", ".join(['"boot"', '"seq"', *(f'"{f}"' for f in fields)])
        where = f'"device" = {_quote(device)}'
        base = self.query_series(f'SELECT {cols} FROM "readings" WHERE {where} AND time < {start}s '
                                 "ORDER BY time DESC LIMIT 1")
        rows = self.query_series(f'SELECT {cols} FROM "readings" WHERE {where} AND time >= {start}s '
                                 f"AND time < {end}s ORDER BY time")
        out = []
        for series in (base, rows):
            for s in series:
                for v in s["values"]:
                    out.append(StoredReading(v[0], v[1], v[2], dict(zip(fields, v[3:]))))
        return out

    def reading_counts(self, devices: Sequence[str], start: int, end: int) -> dict[str, int]:
        out = {d: 0 for d in devices}
        for s in self.query_series(f'SELECT count("seq") FROM "readings" WHERE time >= {start}s AND time < {end}s '
                                   'GROUP BY "device"'):
            device = s["tags"]["device"]
            if device in out:
                out[device] = s["values"][0][1]
        return out

    def last_seen(self, devices: Sequence[str]) -> dict[str, tuple[int, float]]:
        out = {}
        wanted = set(devices)
        for s in self.query_series('SELECT last("received") FROM "readings" GROUP BY "device"'):
            device = s["tags"]["device"]
            if device in wanted:
                out[device] = (s["values"][0][0], s["values"][0][1])
        return out

    def device_states(self, devices: Sequence[str]) -> dict[str, dict[str, DeviceState]]:
        out: dict[str, dict[str, DeviceState]] = {}
        wanted = set(devices)
        for s in self.query_series('SELECT last("doc") FROM "device_state" GROUP BY "device", "channel"'):
            device, channel = s["tags"]["device"], s["tags"]["channel"]
            if device in wanted:
                ts, doc = s["values"][0][0], s["values"][0][1]
                out.setdefault(device, {})[channel] = DeviceState(device, channel, json.loads(doc), ts)
        return out

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        out = []
        # "key" was a tag before the bounds (one series per letter): read either.
        for s in self.query_series('SELECT "topic", "error", "path", "message", "payload_b64", "received", '
                                   '"key"::field, "key"::tag, "device" '
                                   f'FROM "dead_letters" ORDER BY time DESC LIMIT {int(limit)}'):
            for v in s["values"]:
                _t, topic, error, path, message, payload, received, key, old_key, device = v
                out.append(DeadLetter(received, topic, error, path, message, base64.b64decode(payload),
                                      key or old_key or "", device or ""))
        return out

    def next_reading_ts(self, device: str, after: int) -> int | None:
        series = self.query_series(f'SELECT "seq" FROM "readings" WHERE "device" = {_quote(device)} '
                                   f"AND time > {after}s ORDER BY time LIMIT 1")
        return series[0]["values"][0][0] if series else None

    def write_windows(self, windows: Sequence[Window]) -> None:
        precision = _PRECISION[self.precision][0]
        lines = []
        for w in windows:
            p = Point(f"windows_{w.resolution}").tag("device", w.device)
            for key, value in self.device_tags(w.device).items():
                p.tag(key, value)
            for name in WINDOW_VALUES:
                value = getattr(w, name)
                if value is not None:
                    p.field(name, float(value) if name not in ("readings", "emptyings") else int(value))
            lines.append(p.time(self._t(w.start), write_precision=precision).to_line_protocol())
        self.write_lines(lines)

    def windows(self, devices: Sequence[str], resolution: str, start: int, end: int) -> list[Window]:
        if resolution not in ("1m", "15m", "1h", "1d"):
            raise ValueError(f"unknown resolution {resolution!r}")
        cols = ", ".join(f'"{c}"' for c in WINDOW_VALUES)
        wanted = set(devices)
        out = []
        for s in self.query_series(f'SELECT {cols} FROM "windows_{resolution}" WHERE time >= {start}s '
                                   f'AND time < {end}s GROUP BY "device"'):
            device = s["tags"]["device"]
            if device not in wanted:
                continue
            for v in s["values"]:
                values = dict(zip(WINDOW_VALUES, v[1:]))
                values["readings"] = int(values["readings"] or 0)
                if values["emptyings"] is not None:
                    values["emptyings"] = int(values["emptyings"])
                out.append(Window(device, resolution, v[0], **values))
        order = {device: i for i, device in enumerate(devices)}  # the caller's order, as SQLite gives it
        out.sort(key=lambda w: (order[w.device], w.start))
        return out

    def write_month_packs(self, packs: Sequence[MonthPack]) -> None:
        precision = _PRECISION[self.precision][0]
        lines = []
        for pack in packs:
            p = Point("month_packs").tag("device", pack.device)
            for name in _PACK_ARRAYS:
                p.field(name, base64.b64encode(getattr(pack, name)).decode())
            lines.append(p.time(self._t(pack.month), write_precision=precision).to_line_protocol())
        self.write_lines(lines)

    def month_packs(self, devices: Sequence[str], start: int, end: int,
                    quarters: bool = True) -> list[MonthPack]:
        names = [n for n in _PACK_ARRAYS if quarters or n != "quarter_wh"]
        cols = ", ".join(f'"{n}"' for n in names)
        wanted = set(devices)
        out = []
        for s in self.query_series(f'SELECT {cols} FROM "month_packs" WHERE time >= {start}s AND time < {end}s '
                                   'GROUP BY "device"'):
            device = s["tags"]["device"]
            if device not in wanted:
                continue
            for v in s["values"]:
                arrays = {n: base64.b64decode(x or "") for n, x in zip(names, v[1:])}
                out.append(MonthPack(device, v[0], **arrays))
        out.sort(key=lambda p: (p.device, p.month))
        return out

    def data_version(self) -> int:
        series = self.query_series('SELECT last("version") FROM "meta"')
        return int(series[0]["values"][0][1]) if series else 0

    def close(self) -> None:
        self._client.close()


_PACK_ARRAYS = ("readings", "amount", "quarter_wh", "fill_max", "emptyings")


def influx_from_url(url: str, token: str = "", precision: str = "s", **kwargs) -> InfluxStore:
    """`influx+http://host:8086/boucle?rp=autogen` → InfluxStore (influx+https for TLS)."""
    parsed = urlparse(url)
    scheme = parsed.scheme.split("+", 1)[1]
    database = parsed.path.strip("/")
    if not database:
        raise ValueError(f"storage URL {url!r} names no database: use influx+http://HOST:PORT/DATABASE")
    rp = parse_qs(parsed.query).get("rp", [""])[0]
    return InfluxStore(f"{scheme}://{parsed.netloc}", database, token, precision, rp, **kwargs)
