"""`boucle gateway`: wire the stages and run them.

    MQTT (input) ──► inbox ──► spooler: commit to the durable spool, then ack
                                  │
                        parser: spooled batch → readings and rejections
                                  │ (two batches at most in hand)
    store ◄── writer: dedup → synchronous write (retried forever) → off the spool

The parser works on the next batch while the writer's SQLite or HTTP call runs without
the GIL: the two overlap on two cores (measured +20-40 % readings/s at 10 a payload).
Dedup stays with the writer, after the previous batch's commit, so it sees every
earlier batch.

At-least-once from the broker (persistent session, ack only after the spool commit),
exactly-once effect in the store (dedup index + idempotent writes).
"""

from __future__ import annotations

import argparse
import logging
import queue
import random
import signal
import threading
import time
from collections.abc import Callable

from boucle.cli import UserError
from boucle.device_keys import KeyStoreFile
from boucle.logs import configure_logging
from boucle.mqtt import BrokerUnavailable
from boucle.registry import RegistryError, RegistryFile
from boucle.settings import GatewaySettings, SettingsError, env_name, load_settings
from boucle.storage import DeadLetterBounds, Store, open_store
from gateway.aggregate import rebuild_rollups, roll_up
from gateway.input import Inbox, open_input
from gateway.ledger_stage import Mismatch, ledger_round
from gateway.metrics import GatewayMetrics, serve_metrics
from gateway.output import (
    Parsed,
    bound_dead_letters,
    drop_repeats,
    drop_sealed_repeats,
    parse_batch,
    record_metrics,
    write_parsed,
)
from gateway.parse import Signing
from gateway.recent import RecentReadings
from gateway.spool import Spool, Spooled, SpoolFull

log = logging.getLogger("boucle.gateway")
QUIET_S = 0.25
"""How long the writer pauses before the aggregate stage starts a round (Gateway._settle)."""


def dead_letter_bounds(settings: GatewaySettings) -> DeadLetterBounds:
    """The dead-letter bounds of the settings; SettingsError for one that cannot work."""
    bounds = DeadLetterBounds(settings.dead_letters_max_per_device, settings.dead_letters_max_device_bytes,
                              settings.dead_letters_max, settings.dead_letters_max_bytes)
    why = f"a dead letter holds up to {settings.max_payload_bytes} bytes of payload, and its texts"
    for name, value, least, reason in (
            ("dead_letters_max_per_device", bounds.per_device, 1, "at least one letter"),
            ("dead_letters_max_device_bytes", bounds.device_bytes, 65536, why),
            ("dead_letters_max", bounds.total, 1, "at least one letter"),
            ("dead_letters_max_bytes", bounds.total_bytes, 65536, why)):
        if value < least:
            raise SettingsError(f"{env_name(name)}={value}: must be at least {least} ({reason})")
    return bounds


def backoff(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter, so that many gateways do not retry in step."""
    return random.uniform(0, min(cap, base * 2**attempt))


class Gateway:
    """One gateway process: input (MQTT session or JetStream consumer) → durable spool → store."""

    def __init__(self, settings: GatewaySettings, store: Store | None = None,
                 registry: RegistryFile | None = None):
        self.settings = settings
        self.letter_bounds = dead_letter_bounds(settings)
        self.registry = registry or RegistryFile(settings.registry)
        self.keys = KeyStoreFile(settings.device_keys)
        self._signing: tuple[object, object, Signing] | None = None
        self._tags: tuple[object, dict[str, list[tuple[int, dict[str, str]]]]] = (None, {})
        self.store = store or open_store(settings.store_url, token=settings.influx_token,
                                         precision=settings.influx_precision, device_tags=self.device_tags)
        self.spool = Spool(settings.spool_path, settings.spool_max_rows)
        self.recent = RecentReadings(settings.aggregate_memory_readings)
        """What this process stored, for the aggregate stage (gateway.recent)."""
        self.metrics = GatewayMetrics()
        self.inbox = Inbox(maxsize=max(1000, settings.batch_size * 4))
        self.input = open_input(settings)
        self._started = False
        self._stopping = threading.Event()
        self._spooled = threading.Event()
        self._dirtied = threading.Event()  # readings stored: the aggregator has work
        self._parsed: queue.Queue[tuple[list[Spooled], Parsed]] = queue.Queue(maxsize=2)
        self._stages: dict[str, str] = {}  # stage -> running | restarting | stopped
        self._threads = {name: self._stage(name, loop) for name, loop in (
            ("spooler", self._spool_loop), ("parser", self._parse_loop), ("writer", self._write_loop),
            ("aggregator", self._aggregate_loop), ("ledger", self._ledger_loop))}
        self._spooler, self._parser, self._writer, self._aggregator, self._ledger = self._threads.values()
        self._mismatches: set[Mismatch] = set()
        """Days found not to match their ledger (gateway.ledger_stage), logged once each."""
        self._connects = 0
        self._http = None
        self._store_ok = True
        self._spool_full = False
        self._noticed: set[tuple[str, str]] = set()  # (kind, device) already logged: gateway.output
        self._trim_tried = 0.0
        self._trim_failing = False

    def _stage(self, name: str, loop: Callable[[], None]) -> threading.Thread:
        """A stage's thread. Its loop returns only when the gateway stops; an exception
        (a bug: expected failures are handled inside the loops) is logged with its
        traceback, counted, and the loop restarted after a backoff. /healthz fails while a
        stage is down, so a stage can never end silently while the others go on."""

        def run() -> None:
            attempt = 0
            while True:
                self._stages[name] = "running"
                try:
                    loop()
                    self._stages[name] = "stopped"
                    return
                except Exception:
                    self._stages[name] = "restarting"
                    self.metrics.stage_restarts.labels(name).inc()
                    delay = backoff(attempt, 1, 30)
                    log.exception("gateway %s stage failed; restarting it in %.1f s", name, delay)
                    attempt += 1
                    if self._stopping.wait(delay):
                        self._stages[name] = "stopped"
                        return

        return threading.Thread(target=run, name=f"gateway-{name}", daemon=True)

    def start(self) -> Gateway:
        for thread in self._threads.values():
            thread.start()
        self.input.start(self.inbox, self._on_session)
        self._started = True
        self.metrics.connected.set(1)
        if self.settings.metrics_port:
            self._http = serve_metrics(self.metrics, self.health, self.settings.metrics_port)
        log.info("gateway started: client id %s, spool %s (%d waiting)", self.settings.client_id,
                 self.settings.spool_path, self.spool.depth)
        return self

    def device_tags(self, device: str, ts: int) -> dict[str, str]:
        """Where a device was at `ts` (site, territory, kind, channel or stream), for storage tags."""
        stays = self._devices().get(device)
        if stays is None:
            return {}
        for until, tags in stays:
            if ts < until:
                return tags
        return stays[-1][1]

    def _devices(self) -> dict[str, list[tuple[int, dict[str, str]]]]:
        """Registry devices → their tags per stay (until, tags), rebuilt only when the
        registry changes (one stay unless the device moved)."""
        registry = self.registry.current()
        if self._tags[0] is not registry:
            sites = {site.id: site for site in registry.sites}
            table = {}
            for d in registry.devices:
                stays = []
                for site_id, _since, until in d.tenures():
                    site = sites.get(site_id)
                    tags = {"site": site_id, "territory": site.territory if site else "", "kind": d.kind}
                    if d.channel:
                        tags["channel"] = d.channel
                    if d.stream:
                        tags["stream"] = d.stream
                    stays.append((until, tags))
                table[d.id] = stays
            self._tags = (registry, table)
        return self._tags[1]

    def signing(self) -> Signing:
        """The device keys and the registry's `signed` rules, rebuilt when either file changes."""
        registry, keys = self.registry.current(), self.keys.current()
        if self._signing is None or self._signing[0] is not registry or self._signing[1] is not keys:
            self._signing = (registry, keys, Signing(keys, registry.unsigned_refused()))
        return self._signing[2]

    def _on_session(self, session_present: bool) -> None:
        self._connects += 1
        if not session_present and self._connects > 1:
            self.metrics.session_lost.inc()
            log.error("broker reports no session present on reconnect: messages published while the gateway "
                      "was away may be lost; raise the broker's session expiry and keep its persistence on")

    def health(self) -> dict:
        connected = self._started and self.input.connected()
        stages = {name: self._stages.get(name, "stopped") if thread.is_alive() else "stopped"
                  for name, thread in self._threads.items()}
        alive = all(state == "running" for state in stages.values())
        return {"ok": connected and alive and self._store_ok, "mqtt_connected": connected,
                "store_ok": self._store_ok, "spool_depth": self.spool.depth,
                "spool_full": self._spool_full, "stages": stages, "registry_rejected": self.registry.rejected,
                "device_keys_rejected": self.keys.rejected}

    # --- spooler: inbox → durable spool → ack -------------------------------------------

    def _spool_loop(self) -> None:
        while True:
            batch = self.inbox.take(self.settings.batch_size, timeout=0.2)
            if not batch:
                if self._stopping.is_set():
                    return
                continue
            rows = [(m.received, m.topic, m.payload, m.retain) for m in batch]
            attempt = 0
            while True:
                try:
                    self.spool.append(rows)
                    break
                except SpoolFull as exc:
                    if not self._spool_full:
                        log.error("ALARM %s: not acking any more; the broker holds new messages until the "
                                  "store catches up (check the store, raise BOUCLE_SPOOL_MAX_ROWS)", exc)
                    self._spool_full = True
                    self.metrics.spool_full.set(1)
                    if self._stopping.is_set():
                        return  # unacked: the broker redelivers after restart
                    time.sleep(backoff(attempt, 0.2, 5))
                    attempt += 1
            self._spool_full = False
            self.metrics.spool_full.set(0)
            self.input.ack(batch)
            self.metrics.spool_depth.set(self.spool.depth)
            self._spooled.set()

    # --- parser: spool → parse ----------------------------------------------------------

    def _parse_loop(self) -> None:
        s = self.settings
        after = 0  # the last spooled id handed to the writer (0: start at the watermark)
        while True:
            spooled = self.spool.oldest(s.batch_size, after)
            if not spooled:
                if self._stopping.is_set():
                    return
                self._spooled.wait(0.5)
                self._spooled.clear()
                continue
            parsed = parse_batch(spooled, s.topic_prefix, self._devices(), now=time.time(),
                                 max_future_skew_s=s.max_future_skew_s, max_payload_bytes=s.max_payload_bytes,
                                 signing=self.signing())
            while True:
                try:
                    self._parsed.put((spooled, parsed), timeout=0.5)
                    after = spooled[-1].id
                    break
                except queue.Full:
                    if self._stopping.is_set() and not self._writer.is_alive():
                        return  # the writer gave up (store down while stopping): the spool keeps it

    # --- writer: dedup → store → off the spool --------------------------------------------

    def _write_loop(self) -> None:
        s = self.settings
        store_dedups = getattr(self.store, "dedups", False)
        last_forget = last_cap = 0.0
        letters_due = True  # bound the dead letters at start (sets their gauges), then after each batch with some
        while True:
            try:
                spooled, parsed = self._parsed.get(timeout=0.5)
            except queue.Empty:
                if letters_due and time.monotonic() - self._trim_tried > 30:
                    letters_due = self._bound_letters()
                if self._stopping.is_set() and not self._parser.is_alive():
                    return
                continue
            drop_repeats(parsed, self.spool, store_dedups)
            drop_sealed_repeats(parsed, self.store, time.time(), s.ledger_close_after_s,
                                s.ledger_settle_s + 3600)
            attempt = 0
            while True:
                try:
                    write_parsed(parsed, self.store, self.recent)
                    self._store_ok = True
                    break
                except Exception as exc:  # noqa: BLE001 - any store failure: keep the batch, retry
                    self._store_ok = False
                    self.metrics.store_errors.inc()
                    delay = backoff(attempt)
                    log.warning("store write failed (%s); %d messages stay in the spool, retry in %.1f s",
                                exc, len(spooled), delay)
                    attempt += 1
                    if self._stopping.wait(delay) and attempt > 3:
                        return  # stopping: the spool is durable, the next start drains it
            self.spool.remove([m.id for m in spooled], parsed.readings, [(d.key, d.received) for d in parsed.letters],
                              remember=not store_dedups)
            if parsed.readings:
                self._dirtied.set()
            record_metrics(parsed, self.metrics, len(spooled), self._noticed)
            if letters_due or parsed.letters:
                letters_due = self._bound_letters()
            if parsed.letters and time.time() - last_cap > 60:
                last_cap = time.time()
                self.spool.cap_letters(self.letter_bounds.total)
            self.metrics.spool_depth.set(self.spool.depth)
            self.metrics.spool_age.set(self.spool.oldest_age())
            if time.time() - last_forget > 3600:
                last_forget = time.time()
                self.spool.forget_before(int(time.time()) - s.dedup_days * 86400)

    def _bound_letters(self) -> bool:
        """Trim the store's dead letters to their bounds; True while still due (the store
        failed: tried again after the next batch with letters, or in 30 s). Never holds up
        ingestion: InfluxDB 3, whose InfluxQL has no DELETE, keeps its letters unbounded."""
        self._trim_tried = time.monotonic()
        try:
            bound_dead_letters(self.store, self.letter_bounds, self.metrics, self._noticed)
        except Exception as exc:  # noqa: BLE001 - any store failure: retried, ingestion goes on
            if not self._trim_failing:
                log.warning("dead letters not trimmed to their bounds (%s); trying again after the next batch "
                            "(logged once until it works)", exc)
            self._trim_failing = True
            return True
        if self._trim_failing:
            log.info("dead letters trimmed to their bounds again")
        self._trim_failing = False
        return False

    # --- aggregator: dirty devices → rollups recomputed (gateway.aggregate) ---------------

    def _aggregate_loop(self) -> None:
        while True:
            if not self.spool.dirty(1):
                if self._stopping.is_set() and not self._writer.is_alive():
                    return
                self._dirtied.wait(self.settings.aggregate_interval_s)  # set as soon as readings are stored
                continue
            self._settle()
            dirty = self.spool.dirty()
            devices = {d.id: d for d in self.registry.current().devices}
            try:
                done = roll_up(self.store, self.recent, devices, dirty)
            except Exception as exc:  # noqa: BLE001 - store trouble: the spans stay dirty, retried
                log.warning("rollups of %d devices not updated (%s); retrying", len(dirty), exc)
                self._stopping.wait(1)
                continue
            self.spool.clean(done)
            if not done:
                if self._stopping.is_set() and not self._writer.is_alive():
                    return
                self._stopping.wait(0.2)  # readings landing meanwhile (another process): again shortly

    # --- ledger: closed days sealed, sealed days checked (gateway.ledger_stage) ------------

    def _ledger_loop(self) -> None:
        interval = self.settings.ledger_interval_s
        if interval <= 0:  # off in this process: the stage idles, so /healthz stays up
            self._stopping.wait()
            return
        rounds = 0
        while not self._stopping.wait(interval):
            rounds += 1
            every = self.settings.ledger_audit_rounds
            try:
                result = ledger_round(self.store, self.registry.current(), time.time(),
                                      self.settings.ledger_close_after_s, self.settings.ledger_lookback_days,
                                      audit=bool(every) and rounds % every == 0,
                                      settle_s=self.settings.ledger_settle_s)
            except Exception as exc:  # noqa: BLE001 - store trouble: the next round does it
                log.warning("ledger round failed (%s); retrying next round", exc)
                continue
            for entry in result.sealed:
                self.metrics.ledger_sealed.inc()
                log.info("ledger of %s: day %s v%d sealed (%d readings, digest %s)", entry.territory,
                         time.strftime("%Y-%m-%d", time.gmtime(entry.day)), entry.version, entry.count,
                         entry.digest.hex()[:16])
            self.metrics.ledger_mismatches.set(len(result.mismatches))
            for found in set(result.mismatches) - self._mismatches:
                log.error("ALARM ledger of %s: day %s: %s", found.territory,
                          time.strftime("%Y-%m-%d", time.gmtime(found.day)) if found.day >= 0 else "(chain)",
                          found.problem)
            self._mismatches = set(result.mismatches)

    def _settle(self) -> None:
        """Let a burst of writes finish before a round: wait until the writer stored nothing
        for QUIET_S, at most `aggregate_interval_s`. A round during a burst would be redone
        by the next batches, and it takes the cores the writer needs."""
        deadline = time.monotonic() + self.settings.aggregate_interval_s
        while not self._stopping.is_set():
            self._dirtied.clear()
            left = deadline - time.monotonic()
            if left <= 0 or not self._dirtied.wait(min(QUIET_S, left)):
                return

    def stop(self, drain_timeout: float = 30) -> None:
        """SIGTERM path: stop consuming, spool what arrived, flush to the store, close."""
        if self._started:
            self.input.close()  # unacked messages stay with the broker
            self.metrics.connected.set(0)
        self._stopping.set()
        self._spooler.join(timeout=10)
        self._parser.join(timeout=drain_timeout)
        self._writer.join(timeout=drain_timeout)
        self._aggregator.join(timeout=drain_timeout)
        self._ledger.join(timeout=drain_timeout)
        if self._http is not None:
            self._http.shutdown()
        self.spool.close()
        self.store.close()


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", help="registry TOML file (env BOUCLE_REGISTRY)")
    parser.add_argument("--store", dest="store_url",
                        help="storage URL: sqlite:///PATH or influx+http://HOST:PORT/DB (env BOUCLE_STORE_URL)")
    parser.add_argument("--mqtt-host", help="broker host (env BOUCLE_MQTT_HOST)")
    parser.add_argument("--mqtt-port", type=int, help="broker port (env BOUCLE_MQTT_PORT)")
    parser.add_argument("--client-id", help="fixed MQTT client id, one per process (env BOUCLE_CLIENT_ID)")
    parser.add_argument("--share-group", help="shared-subscription group for scale-out (env BOUCLE_SHARE_GROUP)")
    parser.add_argument("--spool", dest="spool_path", help="spool file (env BOUCLE_SPOOL_PATH)")
    parser.add_argument("--metrics-port", type=int, help="port of /metrics and /healthz, 0 to disable")
    parser.add_argument("--rebuild-rollups", action="store_true",
                        help="recompute every device's rollups from the stored readings, then exit "
                             "(a store written by an older gateway)")


def run(args: argparse.Namespace) -> int:
    configure_logging(logging.INFO)
    try:
        settings = load_settings(GatewaySettings, registry=args.registry, store_url=args.store_url,
                                 mqtt_host=args.mqtt_host, mqtt_port=args.mqtt_port, client_id=args.client_id,
                                 share_group=args.share_group, spool_path=args.spool_path,
                                 metrics_port=args.metrics_port)
        if args.rebuild_rollups:
            return _rebuild(settings)
        gateway = Gateway(settings).start()
    except (SettingsError, RegistryError, BrokerUnavailable, ValueError) as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot start: {exc}") from None
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    log.info("stopping: flushing the spool")
    gateway.stop()
    return 0


def _rebuild(settings: GatewaySettings) -> int:
    devices = list(RegistryFile(settings.registry).current().devices)
    store = open_store(settings.store_url, token=settings.influx_token, precision=settings.influx_precision)
    seen = 0

    def progress(device) -> None:
        nonlocal seen
        seen += 1
        print(f"\rrollups: {seen}/{len(devices)} devices ({device.id})", end="", flush=True)

    try:
        done = rebuild_rollups(store, devices, progress)
    finally:
        store.close()
    print(f"\nrollups rebuilt for {done} devices with readings")
    return 0
