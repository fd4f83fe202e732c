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
import binascii
import json
import logging
import random
import re
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from itertools import groupby
from operator import itemgetter
from urllib.parse import parse_qs, urlparse

import msgspec
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.rest import ApiException

from boucle import rollup
from boucle.consent import Consent
from boucle.ledger import LedgerEntry
from boucle.protocol import INTEGER_FIELDS, MEASUREMENT_FIELDS, Reading, ReadingRow, reading_row
from boucle.rollup import DayRow, MonthRow, MonthSlots, row_digest
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
from boucle.storage.rollup_cache import Key, RollupCache

log = logging.getLogger("boucle.storage.influx")

_PRECISION = {"s": (WritePrecision.S, 1), "ms": (WritePrecision.MS, 10**3),
              "us": (WritePrecision.US, 10**6), "ns": (WritePrecision.NS, 10**9)}


class StoreError(Exception):
    """The store did not confirm a write or answer a query."""


class StoreUnreachable(StoreError):
    """No answer at all (connection refused, timeout): the server may be restarting."""


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


def _devices_match(devices: Collection[str]) -> str:
    """An InfluxQL condition selecting these devices: one anchored regular expression (a
    list of `OR "device" = ...` is several times slower for a thousand devices)."""
    names = "|".join(re.escape(d).replace("/", "\\/") for d in sorted(set(devices)))
    return f'"device" =~ /^(?:{names})$/'


_MSGPACK = "application/x-msgpack"
_decode_msgpack = msgspec.msgpack.Decoder().decode
ROLLUPS_RP, ROLLUPS_SHARD = "boucle_rollups", "520w"
"""Rollups live in a retention policy of their own with shard groups of ten years: a query
costs InfluxDB per series and shard it touches, and the default (7-day shard groups) puts a
year's month rows in 12 shards and its day rows in 52 (measured: a year's month digests 35-52
against 119-174 ms, their rows 77-107 against 200-225 ms)."""
WRITE_BYTES = 8 * 2**20
"""Largest write body (InfluxDB refuses more than 25 MB by default)."""
_ROW_TYPES = {"rollup_days": DayRow, "rollup_months": MonthRow, "rollup_month_slots": MonthSlots}
MARKS = "rollup_marks"
"""The measurement of the rollups' write marks: tag `table`, field `write`, time the start."""
_LONG_QUERY = 4000
"""Characters of InfluxQL past which a query goes in a POST body rather than the URL."""


class InfluxStore:
    """Store on InfluxDB's v1-compatible API."""

    dedups = False  # the gateway's dedup index drops repeats before they get here

    def __init__(self, url: str, database: str, token: str = "", precision: str = "s",
                 retention_policy: str = "", device_tags: Callable[[str, int], dict[str, str]] | None = None,
                 timeout_ms: int = 10_000, rollup_cache_bytes: int = 0):
        if precision not in _PRECISION:
            raise ValueError(f"BOUCLE_INFLUX_PRECISION={precision!r}: use s, ms, us or ns")
        self.url, self.database, self.rp = url, database, retention_policy
        self.precision, self._scale = precision, _PRECISION[precision][1]
        self.device_tags = device_tags or (lambda device, ts: {})
        """A device's tags for a reading at ts (the site it was at then)."""
        self.rollup_cache = RollupCache(rollup_cache_bytes) if rollup_cache_bytes > 0 else None
        """Rollup rows kept in this process (the API's; boucle.storage.rollup_cache), or None."""
        self._client = InfluxDBClient(url=url, token=token or None, org="-", timeout=timeout_ms)
        self._api = self._client.api_client
        self._headers = {"Authorization": f"Token {token}"} if token else {}
        self._rollups_rp: str | None = None
        self._setup_lock, self._setting_up = threading.RLock(), False
        try:
            self._set_up()
        except StoreUnreachable as exc:  # an outage at start delays the set-up, never settles it
            log.info("InfluxDB does not answer yet (%s): database and retention policy on first use", exc)

    def _set_up(self) -> None:
        """Make the database and the rollups' retention policy, once the server answers:
        at start, or on first use when it did not answer then. (A choice made on a refused
        connection would send the rollups where the readers do not look.)"""
        if self._rollups_rp is not None:
            return
        with self._setup_lock:
            if self._rollups_rp is not None or self._setting_up:
                return  # set up meanwhile, or this thread's own set-up queries
            self._setting_up = True
            try:
                try:
                    self._query("CREATE DATABASE " + json.dumps(self.database), method="POST", database=None)
                except StoreUnreachable:
                    raise
                except StoreError as exc:  # 2.x / 3: buckets and DBRP mappings are made by their own tools
                    log.debug("CREATE DATABASE not accepted (%s); assuming the database/bucket exists", exc)
                self._rollups_rp = self._rollups_policy()
            finally:
                self._setting_up = False

    @property
    def rollups_rp(self) -> str:
        """The retention policy holding the rollups ("" for the database's default)."""
        self._set_up()
        return self._rollups_rp or ""

    # --- HTTP ----------------------------------------------------------------------

    def _call(self, path: str, method: str, params: list[tuple[str, str]], body: str | None = None,
              form: list[tuple[str, str]] | None = None) -> tuple[bytes, str]:
        """(body, content type) of a confirmed request; StoreError otherwise."""
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "text/plain; charset=utf-8"
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if path == "/query":
            # MessagePack where the server speaks it (InfluxDB 1.x): its JSON encoder is the
            # slowest part of reading rollups (measured 1.4 s against 0.26 s for a year of
            # slots); any other answer is JSON.
            headers["Accept"] = _MSGPACK
        try:
            response = self._api.call_api(path, method, query_params=params, header_params=headers, body=body,
                                          post_params=form, auth_settings=[], _preload_content=False,
                                          _return_http_data_only=True)
        except ApiException as exc:  # the server answered: refused
            raise StoreError(f"InfluxDB {path} at {self.url}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - network, timeout, anything: no answer
            raise StoreUnreachable(f"InfluxDB {path} at {self.url}: {exc}") from None
        if response.status not in (200, 204):
            raise StoreError(f"InfluxDB {path} answered {response.status}: {response.data[:200]!r}")
        return response.data, response.headers.get("Content-Type", "")

    def _rollups_policy(self) -> str:
        """ROLLUPS_RP, made if missing (InfluxDB 1.x); where it cannot be (2.x and 3 map
        retention policies to buckets with their own tools), the default policy."""
        statement = (f'CREATE RETENTION POLICY "{ROLLUPS_RP}" ON {json.dumps(self.database)} DURATION INF '
                     f"REPLICATION 1 SHARD DURATION {ROLLUPS_SHARD}")
        try:
            self._query(statement, method="POST")
            return ROLLUPS_RP
        except StoreUnreachable:
            raise
        except StoreError as exc:
            try:  # it exists already, with other settings (an operator's)
                series = self.query_series(f"SHOW RETENTION POLICIES ON {json.dumps(self.database)}")
            except StoreUnreachable:
                raise
            except StoreError:
                series = []
            if any(v[0] == ROLLUPS_RP for s in series for v in s["values"]):
                return ROLLUPS_RP
            log.info("rollups kept in the default retention policy: %s not made (%s)", ROLLUPS_RP, exc)
            return ""

    def _table(self, table: str) -> str:
        """A rollup measurement, qualified by its retention policy."""
        return f'"{self.rollups_rp}"."{table}"' if self.rollups_rp else f'"{table}"'

    def ping(self) -> bool:
        return self._client.ping()

    def write_lines(self, lines: Sequence[str], precision: str = "", rp: str | None = None) -> None:
        """Write line protocol synchronously, in bodies of at most WRITE_BYTES; raises
        StoreError unless confirmed (204). `rp`: a retention policy other than the store's."""
        self._set_up()
        params = [("db", self.database), ("precision", precision or self.precision)]
        policy = self.rp if rp is None else rp
        if policy:
            params.append(("rp", policy))
        body, size = [], 0
        for line in lines:
            body.append(line)
            size += len(line) + 1
            if size >= WRITE_BYTES:
                self._call("/write", "POST", params, "\n".join(body) + "\n")
                body, size = [], 0
        if body:
            self._call("/write", "POST", params, "\n".join(body) + "\n")

    def _bump_version(self, rollups: bool = False) -> None:
        """Write the data version (caches: data_version; `rollups`: also the rollups' own,
        which the rollup cache follows), in a write of its own after the data's: InfluxDB
        applies a write's points shard by shard in parallel, so a version written with the
        data could be seen before it."""
        now = time.time_ns()
        self.write_lines([f"meta version={now}i{f',rollups={now}i' if rollups else ''} {self._t(time.time())}"])

    def _query(self, q: str, method: str = "GET", database: str | None = "", epoch: str = "s") -> list[dict]:
        """The results of InfluxQL statements (several: separated by `;`, one round trip)."""
        self._set_up()
        params = [("q", q), ("epoch", epoch)]
        if database is not None:
            params.append(("db", database or self.database))
        if method == "GET" and len(q) > _LONG_QUERY:  # e.g. a thousand devices named in a regex
            data, kind = self._call("/query", "POST", [], form=params)
        else:
            data, kind = self._call("/query", method, params)
        data = _decode_msgpack(data) if kind.startswith(_MSGPACK) else json.loads(data or b"{}")
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

    def write_rows(self, rows: Sequence[ReadingRow], received: float, checked: Collection[str] = ()) -> int:
        # Line protocol formatted here rather than through influxdb_client's Point (about ten
        # times the cost a reading, on the gateway's hot path); Point's escaping and field
        # types are kept, and tests read every field and tag back from a real InfluxDB.
        stamp = f"received={float(received)!r}"
        lines = []
        for device, group in groupby(rows, key=itemgetter(0)):
            got = f"{stamp},{SIG_CHECKED}=1i" if device in checked else stamp
            shown, series = None, ""
            for row in group:
                tags = self.device_tags(device, row[3])
                if tags is not shown:  # the same dict while the device stays at one site
                    shown, series = tags, self._series(device, tags)
                fields = [fmt(v) for fmt, v in zip(_FIELD_FORMATS, row[4:]) if v is not None]
                fields.append(f"boot={row[1]}i,seq={row[2]}i,{got}")
                lines.append(f"{series} {','.join(fields)} {self._t(row[3])}")
        self.write_lines(lines)
        if lines:
            self._bump_version()
        return len(rows)

    def _series(self, device: str, tags: dict[str, str]) -> str:
        """`readings,device=…,kind=…` with the device's tags, escaped and sorted."""
        ordered = sorted({**tags, "device": device}.items())
        return "readings," + ",".join(f"{_tag(k)}={_tag(v)}" for k, v in ordered if v != "")

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        # Series per device and error (bounded), not per letter: the letter's key is a
        # field, and its time the receipt in µs plus three digits from its key (ns), so two
        # letters of one device and error received in the same µs stay two points. Within
        # a write, two keys whose digits agree are moved apart by a nanosecond (a point
        # with another's series and time would replace it). The same letter written again
        # (a retry, a redelivery: same receipt, same key) is the same point.
        lines, taken = [], {}
        for d in letters:
            p = (Point("dead_letters").tag("device", d.device).tag("error", d.error)
                 .field("topic", d.topic).field("path", d.path).field("message", d.message)
                 .field("payload_b64", base64.b64encode(d.payload).decode()).field("received", float(d.received))
                 .field("key", d.key).field("size", letter_size(d)))
            t = round(d.received * 10**6) * 1000 + zlib.crc32(d.key.encode()) % 1000
            while taken.setdefault((d.device, d.error, t), d.key) != d.key:
                t += 1
            lines.append(p.time(t, write_precision=WritePrecision.NS).to_line_protocol())
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

    def readings(self, device: str, start: int, end: int, fields: Sequence[str],
                 after: bool = False) -> list[StoredReading]:
        check_fields(fields)
        cols = ", ".join(['"boot"', '"seq"', *(f'"{f}"' for f in fields)])
        where = f'"device" = {_quote(device)}'
        base = self.query_series(f'SELECT {cols} FROM "readings" WHERE {where} AND time < {start}s '
                                 "ORDER BY time DESC LIMIT 1")
        rows = self.query_series(f'SELECT {cols} FROM "readings" WHERE {where} AND time >= {start}s '
                                 f"AND time < {end}s ORDER BY time")
        later = self.query_series(f'SELECT {cols} FROM "readings" WHERE {where} AND time >= {end}s '
                                  "ORDER BY time LIMIT 1") if after else []
        out = []
        for series in (base, rows, later):
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

    def reading_marks(self, since: Mapping[str, int]) -> dict[str, ReadingMarks]:
        groups: dict[int, list[str]] = defaultdict(list)
        for device, t in since.items():
            groups[t].append(device)
        fields = (*rollup.FIELDS, RECEIVED)
        cols = ", ".join(['"boot"', '"seq"', *(f'"{f}"' for f in fields)])
        statements = []
        for t, devices in sorted(groups.items()):
            match = _devices_match(devices)
            statements += [(f'SELECT count("seq"), max("received") FROM "readings" WHERE time >= {t}s AND {match} '
                           'GROUP BY "device"'),
                           (f'SELECT {cols} FROM "readings" WHERE time < {t}s AND {match} GROUP BY "device" '
                           "ORDER BY time DESC LIMIT 1")]
        results = self._query(";".join(statements)) if statements else []
        counts: dict[str, tuple[int, float | None]] = {}
        before: dict[str, StoredReading] = {}
        for i, result in enumerate(results):
            for s in result.get("series", []):
                device, v = s["tags"]["device"], s["values"][0]
                if i % 2 == 0:
                    counts[device] = (int(v[1]), v[2])
                else:
                    before[device] = StoredReading(v[0], v[1], v[2], dict(zip(fields, v[3:])))
        return {d: ReadingMarks(*counts.get(d, (0, None)), before.get(d)) for d in since}

    def write_rollups(self, days: Sequence[DayRow], months: Sequence[MonthRow]) -> None:
        lines = [self._rollup_line("rollup_days", d.device, d.day, d) for d in days]
        lines += [self._rollup_line("rollup_months", m.device, m.month, m) for m in months]
        lines += [self._rollup_line("rollup_month_slots", m.device, m.month, m) for m in months if m.slots is not None]
        if lines:
            self.write_lines(lines, rp=self.rollups_rp or None)
            # the write marks of the starts written (boucle.storage.rollup_cache), after the rows
            mark = random.getrandbits(63)
            starts = {("rollup_days", d.day) for d in days} | {("rollup_months", m.month) for m in months}
            starts |= {("rollup_month_slots", m.month) for m in months if m.slots is not None}
            self.write_lines([f"{MARKS},table={table} write={mark}i {self._t(t)}" for table, t in sorted(starts)],
                             rp=self.rollups_rp or None)
            self._bump_version(rollups=True)

    def _rollup_line(self, table: str, device: str, start: int, row) -> str:
        # base64 strings: the v1 line protocol has no bytes type (a string field holds up to 64 KB)
        columns = [getattr(row, c) for c in ROLLUP_TABLES[table]]
        fields = ",".join(f'{c}="{base64.b64encode(v).decode()}"' for c, v in zip(ROLLUP_TABLES[table], columns))
        return f"{table},device={_tag(device)} {fields},digest={row_digest(columns)}i {self._t(start)}"

    def _rollup_rows(self, table: str, devices: Sequence[str], start: int, end: int) -> list:
        """A table's rows of these devices with start <= time < end, by device then time:
        from the rollup cache when there is one (checked against the store), else read."""
        if not devices:
            return []
        if self.rollup_cache is None:
            return sorted(self._fetch_rollups(table, devices, start, end, None))
        return self.rollup_cache.rows(table, devices, start, end, self.rollups_version(),
                                      lambda: self._marks(table, start, end),
                                      lambda starts: self._digests(table, devices, start, end, starts),
                                      lambda keys: self._fetch_rollups(table, devices, start, end, keys),
                                      read_whole=table in READ_WHOLE)

    def _fetch_rollups(self, table: str, devices: Sequence[str], start: int, end: int,
                       keys: Collection[Key] | None) -> list:
        """The rows of `keys` (None: all rows of the devices in the span), in one round trip.
        The device is selected as a column rather than grouped by: grouping a thousand series
        costs InfluxDB more than the rows (measured 115 against 37 ms for 13,000 month rows)."""
        cols = ", ".join(f'"{c}"' for c in ROLLUP_TABLES[table])
        if keys is None:
            statements = [(f'SELECT {cols}, "device" FROM {self._table(table)} WHERE time >= {start}s AND time < {end}s '
                          f"AND {_devices_match(devices)}")]
        else:
            at: dict[int, list[str]] = defaultdict(list)
            for device, t in keys:
                at[t].append(device)
            statements = [f'SELECT {cols}, "device" FROM {self._table(table)} WHERE time = {t}s AND {_devices_match(ds)}'
                          for t, ds in sorted(at.items())]
        make = _ROW_TYPES[table]
        return [make(v[-1], int(v[0]), *map(binascii.a2b_base64, (x or "" for x in v[1:-1])))
                for result in (self._query(";".join(statements)) if statements else [])
                for s in result.get("series", []) for v in s["values"]]

    def rollup_digests(self, table: str, devices: Sequence[str], start: int, end: int
                       ) -> dict[tuple[str, int], int | None]:
        return {(device, t): digest for t, digest, device in self._digests(table, devices, start, end)}

    def _digests(self, table: str, devices: Sequence[str], start: int, end: int,
                 starts: Collection[int] | None = None) -> list:
        """(time, digest, device) of the rows (as decoded: lists, no conversion); with
        `starts`, of the rows at those times only."""
        if not devices:
            return []
        match = _devices_match(devices)
        if starts is None:
            spans = [f"time >= {start}s AND time < {end}s"]
        else:
            spans = [f"time = {t}s" for t in sorted(starts)]
        statements = [f'SELECT "digest", "device" FROM {self._table(table)} WHERE {span} AND {match}' for span in spans]
        return [v for result in self._query(";".join(statements)) for s in result.get("series", [])
                for v in s["values"]]

    def _marks(self, table: str, start: int, end: int) -> dict[int, int]:
        """The write mark of each start of a table in [start, end) that has one: a number
        written beside the rows of a start whenever rows are written there (one series a
        table: a few hundred points a year, read in a few ms)."""
        series = self.query_series(f'SELECT "write" FROM {self._table(MARKS)} WHERE "table" = {_quote(table)} '
                                   f"AND time >= {start}s AND time < {end}s")
        return {v[0]: v[1] for s in series for v in s["values"]}

    def day_rollups(self, devices: Sequence[str], start: int, end: int) -> list[DayRow]:
        return self._rollup_rows("rollup_days", devices, start, end)

    def month_rollups(self, devices: Sequence[str], start: int, end: int) -> list[MonthRow]:
        return self._rollup_rows("rollup_months", devices, start, end)

    def month_slots(self, devices: Sequence[str], start: int, end: int) -> list[MonthSlots]:
        return self._rollup_rows("rollup_month_slots", devices, start, end)

    def append_ledger(self, entry: LedgerEntry) -> bool:
        # A point per entry at time = its seq (seconds), in the rollups' retention policy.
        # InfluxDB has no conditional write: the check before it narrows, not closes, the
        # window in which two processes seal the same seq (docs/ledger.md: one sealer).
        if self._ledger_points(entry.territory, f"AND time = {entry.seq}s"):
            return False
        fields = (f'day={entry.day}i,version={entry.version}i,count={entry.count}i,root="{entry.root.hex()}",'
                  f'prev="{entry.prev.hex()}",digest="{entry.digest.hex()}",sealed_at={float(entry.sealed_at)!r},'
                  f'sites="{ledger_sites_text(entry.sites, entry.checks).replace(chr(34), chr(92) + chr(34))}"')
        self.write_lines([f"ledger,territory={_tag(entry.territory)} {fields} {self._t(entry.seq)}"],
                         rp=self.rollups_rp or None)
        self._bump_version()
        return True

    def ledger(self, territory: str) -> list[LedgerEntry]:
        return [LedgerEntry(territory, int(v[0]),
                            int(v[1]), int(v[2]), int(v[3]), bytes.fromhex(v[4]), bytes.fromhex(v[5]),
                            bytes.fromhex(v[6]), float(v[7]), ledger_sites(v[8]), ledger_checks(v[8]))
                for v in self._ledger_points(territory)]

    def _ledger_points(self, territory: str, where: str = "") -> list:
        series = self.query_series(f'SELECT "day", "version", "count", "root", "prev", "digest", "sealed_at", "sites" '
                                   f'FROM {self._table("ledger")} WHERE "territory" = {_quote(territory)} {where} '
                                   "ORDER BY time")
        return [v for s in series for v in s["values"]]

    def append_consent(self, consent: Consent) -> None:
        # time in ns: two decisions of one site never share a point
        line = (f'consent,site={_tag(consent.site)} author="{consent.author}",shares="{consent.shares}",'
                f"resolution_s={consent.resolution_s}i,at={float(consent.at)!r} {round(consent.at * 10**9)}")
        self.write_lines([line], "ns", rp=self.rollups_rp or None)
        self._bump_version()

    def consents(self) -> list[Consent]:
        series = self.query_series(f'SELECT "site", "at", "author", "shares", "resolution_s" '
                                   f'FROM {self._table("consent")} ORDER BY time')
        return [Consent(v[1], float(v[2]), v[3], v[4], int(v[5])) for s in series for v in s["values"]]

    def data_version(self) -> int:
        series = self.query_series('SELECT last("version") FROM "meta"')
        return int(series[0]["values"][0][1]) if series else 0

    def rollups_version(self) -> int:
        """A number that changes whenever rollups are written (the rollup cache's)."""
        series = self.query_series('SELECT last("rollups") FROM "meta"')
        return int(series[0]["values"][0][1]) if series else 0

    def close(self) -> None:
        self._client.close()



READ_WHOLE = frozenset({"rollup_days"})
"""Rollup tables whose rows the rollup cache reads again whole at a start whose write mark
moved, without asking their digests first: day rows are small (~0.7 KB) and a gateway round
rewrites most of a day's, and InfluxDB pays per series either way (measured for 1,000
devices: the day's digests 20-26 ms, its rows 45 ms)."""


def influx_from_url(url: str, token: str = "", precision: str = "s", **kwargs) -> InfluxStore:
    """`influx+http://host:8086/boucle?rp=autogen` → InfluxStore (influx+https for TLS)."""
    parsed = urlparse(url)
    scheme = parsed.scheme.split("+", 1)[1]
    database = parsed.path.strip("/")
    if not database:
        raise ValueError(f"storage URL {url!r} names no database: use influx+http://HOST:PORT/DATABASE")
    rp = parse_qs(parsed.query).get("rp", [""])[0]
    return InfluxStore(f"{scheme}://{parsed.netloc}", database, token, precision, rp, **kwargs)
