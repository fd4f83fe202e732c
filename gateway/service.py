"""`boucle gateway`: wire the stages — input (MQTT) → parse → output (store) — and run them.

At-least-once from the broker: the MQTT session is persistent and a message is acked
only after its batch is committed; repeats are dropped by identity in the store.
"""

from __future__ import annotations

import argparse
import logging
import queue
import signal
import threading
import time

from boucle.cli import UserError
from boucle.mqtt import BrokerUnavailable, Session, close_session
from boucle.registry import RegistryError, RegistryFile
from boucle.settings import GatewaySettings, SettingsError, load_settings
from boucle.storage import Store, open_store
from gateway.input import Message, subscribe
from gateway.metrics import GatewayMetrics, serve_metrics
from gateway.output import commit_batch

log = logging.getLogger("boucle.gateway")


class Gateway:
    """One gateway process: a persistent MQTT session feeding a committing writer thread."""

    def __init__(self, settings: GatewaySettings, store: Store | None = None,
                 registry: RegistryFile | None = None):
        self.settings = settings
        self.registry = registry or RegistryFile(settings.registry)
        self.store = store or open_store(settings.store_url)
        self.metrics = GatewayMetrics()
        self.inbox: queue.Queue[Message] = queue.Queue(maxsize=max(1000, settings.batch_size * 4))
        self.session: Session | None = None
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="gateway-writer", daemon=True)
        self._connects = 0
        self._http = None

    def start(self) -> "Gateway":
        self._writer.start()
        self.session = subscribe(self.settings, self.inbox, self._on_session)
        self.metrics.connected.set(1)
        if self.settings.metrics_port:
            self._http = serve_metrics(self.metrics, self.health, self.settings.metrics_port)
        return self

    def _on_session(self, session_present: bool) -> None:
        self._connects += 1
        if not session_present and self._connects > 1:
            # The broker forgot us: anything queued for us while we were away is gone.
            self.metrics.session_lost.inc()
            log.error("broker reports no session present on reconnect: messages published while "
                      "the gateway was away may be lost; raise the broker's session expiry / persistence")

    def health(self) -> dict:
        connected = bool(self.session and self.session.client.is_connected())
        return {"ok": connected and self._writer.is_alive(), "mqtt_connected": connected,
                "writer_alive": self._writer.is_alive(), "spool_depth": self.inbox.qsize()}

    def _write_loop(self) -> None:
        while not (self._stop.is_set() and self.inbox.empty()):
            try:
                batch = [self.inbox.get(timeout=0.2)]
            except queue.Empty:
                continue
            while len(batch) < self.settings.batch_size:
                try:
                    batch.append(self.inbox.get_nowait())
                except queue.Empty:
                    break
            self.metrics.spool_depth.set(self.inbox.qsize())
            devices = {d.id for d in self.registry.current().devices}
            while True:
                try:
                    commit_batch(batch, self.store, devices,
                                 max_future_skew_s=self.settings.max_future_skew_s,
                                 max_payload_bytes=self.settings.max_payload_bytes, metrics=self.metrics)
                    break
                except Exception:  # noqa: BLE001 - storage trouble: keep the batch, retry
                    log.exception("store write failed; retrying the batch in 1 s (nothing acked)")
                    time.sleep(1)
            client = self.session.client if self.session else None
            for msg in batch:
                if client is not None and msg.qos > 0:
                    client.ack(msg.mid, msg.qos)

    def stop(self) -> None:
        """Graceful: commit and ack what was received, then disconnect."""
        self._stop.set()
        self._writer.join(timeout=30)
        if self.session is not None:
            close_session(self.session)
            self.metrics.connected.set(0)
        if self._http is not None:
            self._http.shutdown()
        self.store.close()


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", help="registry TOML file (env BOUCLE_REGISTRY)")
    parser.add_argument("--store", dest="store_url", help="storage URL, e.g. sqlite:///boucle.db (env BOUCLE_STORE_URL)")
    parser.add_argument("--mqtt-host", help="broker host (env BOUCLE_MQTT_HOST)")
    parser.add_argument("--mqtt-port", type=int, help="broker port (env BOUCLE_MQTT_PORT)")
    parser.add_argument("--metrics-port", type=int, help="port of /metrics and /healthz, 0 to disable")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_settings(GatewaySettings, registry=args.registry, store_url=args.store_url,
                                 mqtt_host=args.mqtt_host, mqtt_port=args.mqtt_port,
                                 metrics_port=args.metrics_port)
        gateway = Gateway(settings).start()
    except (SettingsError, RegistryError, BrokerUnavailable, ValueError) as exc:
        raise UserError(str(exc)) from None
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    gateway.stop()
    return 0
