"""Output stage: spooled messages → parse → dedup → store, then off the spool.

The store write is synchronous and retried by the caller until it succeeds; spooled
messages are removed only afterwards, so a crash at any point replays them, and the
replay is harmless: readings are keyed by (device, boot, seq) and dead letters by the
content hash, so rewriting gives the same stored state.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Collection, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from operator import itemgetter

from boucle.protocol import MEASUREMENT_FIELDS, ReadingRow, row_values
from boucle.storage import DeadLetter, DeadLetterBounds, DeviceState, Store
from gateway.input import split_topic
from gateway.ledger_stage import possibly_sealed_before
from gateway.metrics import GatewayMetrics
from gateway.parse import Rejected, Signing, parse_rows, parse_state
from gateway.recent import RecentReadings
from gateway.spool import Spool, Spooled, content_digest

_IDENTITY = itemgetter(0, 1, 2)  # a row's (device, boot, seq)
_TS = itemgetter(3)
log = logging.getLogger("boucle.gateway")


@dataclass
class Parsed:
    """A batch after the parse and dedup stages: what to write, what was refused."""

    readings: list[ReadingRow] = field(default_factory=list)
    duplicates: int = 0
    stored: int = 0
    letters: list[DeadLetter] = field(default_factory=list)
    states: list[DeviceState] = field(default_factory=list)
    received: int = 0
    readings_ahead: int = 0
    """Readings stamped ahead of the gateway's clock when it received them (within the skew)."""
    ahead: dict[str, float] = field(default_factory=dict)
    """Devices with such readings: the largest lead, in seconds."""
    conflicts: list[tuple[ReadingRow | None, ReadingRow]] = field(default_factory=list)
    """Repeats of an identity with other content, not stored: (the copy stored first, when
    known, and the one refused)."""
    written: set[str] = field(default_factory=set)
    """What the store confirmed already (a retried write does not write it twice)."""
    checked: set[str] = field(default_factory=set)
    """Devices whose telemetry in the batch had its signature checked against their key
    (stored so, for the ledger's count of checked readings)."""


def letter_key(topic: str, payload: bytes) -> str:
    """A dead letter's identity: the hash of what arrived. A redelivered copy of a refused
    message (at-least-once) is the same dead letter, not a second one."""
    return hashlib.sha256(topic.encode() + b"\0" + payload).hexdigest()[:32]


def parse_batch(spooled: Sequence[Spooled], prefix: str, known_devices: Collection[str] | None, *,
                now: float, max_future_skew_s: float, max_payload_bytes: int,
                signing: Signing | None = None) -> Parsed:
    """Parse every spooled message; refused ones become dead letters keyed by content.
    `signing`: the keys telemetry signatures are checked with (None: none checked)."""
    out = Parsed()
    for msg in spooled:
        device, channel = split_topic(prefix, msg.topic) or ("", "")
        try:
            result = _parse_message(msg, device, channel, known_devices, now, max_future_skew_s, max_payload_bytes,
                                    signing)
        except Exception as exc:
            # Kept whole as a dead letter (it can be replayed once the bug is fixed), and
            # logged with its traceback: the parser has no expected exceptions.
            log.exception("parser failed on a message of %s; dead-lettered as parser_error", msg.topic)
            result = Rejected("parser_error", "", f"the gateway's parser failed: {type(exc).__name__}: {exc}")
        if isinstance(result, Rejected):
            out.letters.append(DeadLetter(msg.received, msg.topic, result.error, result.path, result.message,
                                          msg.payload[:max_payload_bytes], key=letter_key(msg.topic, msg.payload),
                                          device=device))
        elif isinstance(result, DeviceState):
            out.states.append(result)
        else:
            out.received += len(result)
            out.readings.extend(result)
            if signing is not None and device in signing.keys:  # a keyed device's telemetry is taken only signed
                out.checked.add(device)
            if max(map(_TS, result)) > msg.received:
                _note_ahead(out, result, msg.received)
    return out


def _note_ahead(out: Parsed, rows: list[ReadingRow], received: float) -> None:
    """Readings stamped after the moment the gateway received them: the device's clock is
    ahead (a reading's ts is floored to the second, so a synced clock never is). They are
    taken as stamped, since clocks differ; counted, so that a drifting device shows."""
    device = rows[0][0]
    out.readings_ahead += sum(1 for r in rows if r[3] > received)
    out.ahead[device] = max(out.ahead.get(device, 0.0), max(map(_TS, rows)) - received)


def _parse_message(msg: Spooled, device: str, channel: str, known_devices: Collection[str] | None, now: float,
                   max_future_skew_s: float, max_payload_bytes: int,
                   signing: Signing | None) -> list[ReadingRow] | DeviceState | Rejected:
    if channel == "telemetry":
        return parse_rows(device, msg.payload, known_devices=known_devices, now=now,
                          max_future_skew_s=max_future_skew_s, max_bytes=max_payload_bytes, retained=msg.retain,
                          signing=signing)
    if channel in ("status", "health"):
        return parse_state(device, channel, msg.payload, msg.received, known_devices, retained=msg.retain)
    return Rejected("topic", "", f"unexpected topic {msg.topic!r}")


def drop_repeats(parsed: Parsed, spool: Spool, store_dedups: bool = False) -> None:
    """Dedup stage: keep each (device, boot, seq) and each dead letter once, within the
    batch and across restarts. A store keyed by identity (SQLite) drops repeats itself,
    so only repeats inside the batch are dropped here. The first copy stored wins: a
    repeat with other content is a conflict, counted and not stored (write_parsed finds
    those the store dropped)."""
    rows = parsed.readings
    keys = list(map(_IDENTITY, rows))
    if not (store_dedups and len(set(keys)) == len(keys)):  # else (the usual case) nothing to drop
        stored = {} if store_dedups else spool.seen(keys)
        first: dict[tuple[str, int, int], ReadingRow] = {}
        kept: list[ReadingRow] = []
        for row, key in zip(rows, keys):
            if key in stored:
                digest = stored[key]
                if digest is not None and digest != content_digest(row):
                    parsed.conflicts.append((None, row))
            elif key in first:  # a second copy inside this batch
                if first[key][3:] != row[3:]:
                    parsed.conflicts.append((first[key], row))
            else:
                first[key] = row
                kept.append(row)
        parsed.duplicates = len(rows) - len(kept) - len(parsed.conflicts)
        parsed.readings = kept
    fresh = spool.unseen_letters([d.key for d in parsed.letters])
    letters = []
    for letter in parsed.letters:
        if letter.key in fresh:
            fresh.discard(letter.key)
            letters.append(letter)
    parsed.letters = letters


def write_parsed(parsed: Parsed, store: Store, recent: RecentReadings | None = None) -> None:
    """The synchronous store write; raises if the store did not confirm. Called again
    after a failure, it writes only what the store has not confirmed yet. `recent`, the
    aggregate stage's memory, gets the readings the store confirmed."""
    if parsed.readings and "readings" not in parsed.written:
        received = time.time()
        with recent.lock if recent is not None else nullcontext():
            new = store.write_rows(parsed.readings, received, parsed.checked)
            if recent is not None:
                if new == len(parsed.readings) or not store.dedups:
                    recent.add(parsed.readings, received)
                else:  # some were repeats the store kept its own copy of: not what the memory would say
                    recent.forget(list(dict.fromkeys(map(itemgetter(0), parsed.readings))))
        repeats = len(parsed.readings) - new
        if repeats and store.dedups:
            stored = store.stored_rows(list(map(_IDENTITY, parsed.readings)))
            conflicts = [(stored[r[:3]], r) for r in parsed.readings if stored.get(r[:3], r) != r]
            parsed.conflicts.extend(conflicts)
            repeats -= len(conflicts)
        parsed.duplicates += repeats
        parsed.stored = new
        parsed.written.add("readings")
    if parsed.letters and "letters" not in parsed.written:
        store.write_dead_letters(parsed.letters)
        parsed.written.add("letters")
    if parsed.states:
        store.write_device_states(parsed.states)


def record_metrics(parsed: Parsed, metrics: GatewayMetrics, messages: int, noticed: set[tuple[str, str]]) -> None:
    """Count a drained batch in the gateway's metrics. A device's first reading ahead of
    the gateway clock, and its first conflicting repeat, are logged once (`noticed` keeps
    which devices were, per process)."""
    metrics.messages.inc(messages)
    metrics.readings_received.inc(parsed.received)
    metrics.readings_ahead.inc(parsed.readings_ahead)
    for device, lead in parsed.ahead.items():
        _once(noticed, "ahead", device, "device %s stamps readings up to %.1f s ahead of the gateway clock (taken as "
              "stamped, within BOUCLE_MAX_FUTURE_SKEW_S): check its clock (NTP), or the gateway's; logged once per "
              "device, boucle_gateway_readings_ahead counts them", device, lead)
    metrics.stored.inc(parsed.stored)
    metrics.duplicates.inc(parsed.duplicates)
    metrics.conflicting.inc(len(parsed.conflicts))
    for kept, refused in parsed.conflicts:
        device, boot, seq = refused[:3]
        was = f" (stored first: ts {kept[3]}, {row_values(kept)})" if kept else ""
        _once(noticed, "conflict", device, "device %s sent boot %d seq %d again with other content: ts %d, %s%s; the "
              "first copy stored is kept, this one is not. A device that reuses seq numbers within a boot lost its "
              "counter without counting a boot; logged once per device, boucle_gateway_readings_conflicting counts "
              "them", device, boot, seq, refused[3], row_values(refused), was)
    for letter in parsed.letters:
        metrics.rejected.labels(letter.error).inc()
    if parsed.readings:
        metrics.lag.set(max(0.0, time.time() - max(r[3] for r in parsed.readings)))


def bound_dead_letters(store: Store, bounds: DeadLetterBounds, metrics: GatewayMetrics,
                       noticed: set[tuple[str, str]]) -> None:
    """Keep the store's dead letters within their bounds (the oldest go first), count what
    was dropped, show what the store holds, and log an ALARM the first time a device, or
    the store, reached its bound (per process, like the spool-full alarm)."""
    trim = store.trim_dead_letters(bounds)
    for bound, dropped in (("device", trim.dropped_device), ("total", trim.dropped_total)):
        if dropped:
            metrics.letters_dropped.labels(bound).inc(dropped)
    metrics.dead_letters.set(trim.letters)
    metrics.dead_letter_bytes.set(trim.bytes)
    for device in trim.devices_over:
        _once(noticed, "letters", device, "ALARM dead letters of device %r reached their bound (%d letters or %d bytes: "
              "BOUCLE_DEAD_LETTERS_MAX_PER_DEVICE, BOUCLE_DEAD_LETTERS_MAX_DEVICE_BYTES): its oldest are dropped from "
              "now on, counted in boucle_gateway_dead_letters_dropped{bound=\"device\"}; read its dead letters and fix "
              "the device", device, bounds.per_device, bounds.device_bytes, level=logging.ERROR)
    if trim.over_total:
        _once(noticed, "all letters", "", "ALARM the dead-letter store reached its bound (%d letters or %d bytes: "
              "BOUCLE_DEAD_LETTERS_MAX, BOUCLE_DEAD_LETTERS_MAX_BYTES): the oldest are dropped from now on, counted in "
              "boucle_gateway_dead_letters_dropped{bound=\"total\"}; read the dead letters and fix their senders",
              bounds.total, bounds.total_bytes, level=logging.ERROR)


def _once(noticed: set[tuple[str, str]], kind: str, device: str, text: str, *args: object,
          level: int = logging.WARNING) -> None:
    """Log about a device (or, for "", the gateway) the first time only: the metrics count
    every case."""
    if (kind, device) not in noticed:
        noticed.add((kind, device))
        log.log(level, text, *args)


def drop_sealed_repeats(parsed: Parsed, store: Store, now: float, close_after_s: int,
                        margin_s: float = 3600.0) -> None:
    """Dedup stage, for a store that rewrites a repeat (InfluxDB: one point per device and
    ts): keep out the readings of days the ledger may have sealed that the store holds
    already. Rewritten, such a reading would get a `received` after its day's sealing, and
    an audit would no longer find it among the readings the entry holds (a false ALARM;
    docs/ledger.md, "False alarms"). One read per device of the batch with such old
    readings (late ones, rare); a day is taken as possibly sealed `margin_s` (at least the
    ledger's settle time) before it closes. Same identity and content: a duplicate; other
    content: a conflict, as in drop_repeats."""
    if getattr(store, "dedups", False) or not parsed.readings:
        return
    before = possibly_sealed_before(now, close_after_s, margin_s)
    old: dict[str, list[ReadingRow]] = {}
    for row in parsed.readings:
        if row[3] < before:
            old.setdefault(row[0], []).append(row)
    if not old:
        return
    stored: set[ReadingRow] = set()
    for device, rows in old.items():
        ts = [r[3] for r in rows]
        for r in store.readings(device, min(ts), max(ts) + 1, MEASUREMENT_FIELDS):
            stored.add((device, r.boot, r.seq, r.ts, *(r.values.get(f) for f in MEASUREMENT_FIELDS)))
    by_identity = {row[:3]: row for row in stored}
    kept = []
    for row in parsed.readings:
        first = by_identity.get(row[:3]) if row[3] < before else None
        if first is None:
            kept.append(row)
        elif first == row:
            parsed.duplicates += 1
        else:
            parsed.conflicts.append((first, row))
    parsed.readings = kept
