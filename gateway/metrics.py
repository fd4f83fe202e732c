"""Gateway observability: Prometheus metrics and the /metrics + /healthz HTTP endpoint."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class GatewayMetrics:
    """The gateway's counters, in a registry of its own (several gateways may share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages = Counter("boucle_gateway_messages_received", "MQTT messages taken off the spool",
                                registry=r)
        self.readings_received = Counter("boucle_gateway_readings_received", "Readings in valid telemetry", registry=r)
        self.stored = Counter("boucle_gateway_readings_stored", "Readings newly written to storage", registry=r)
        self.readings_ahead = Counter("boucle_gateway_readings_ahead",
                                      "Readings stamped ahead of the gateway clock when received, within the allowed "
                                      "skew (taken as stamped)", registry=r)
        self.duplicates = Counter("boucle_gateway_readings_duplicate", "Readings dropped as repeats of (device, boot, seq)",
                                  registry=r)
        self.conflicting = Counter("boucle_gateway_readings_conflicting",
                                   "Readings that repeat a stored (device, boot, seq) with other content: not stored "
                                   "(the first copy wins)", registry=r)
        self.rejected = Counter("boucle_gateway_messages_rejected", "Messages dead-lettered, by reason",
                                ["reason"], registry=r)
        self.letters_dropped = Counter("boucle_gateway_dead_letters_dropped",
                                       "Dead letters dropped, oldest first, to keep the store within its bounds: "
                                       "a device's (bound=device) or all (bound=total)", ["bound"], registry=r)
        self.dead_letters = Gauge("boucle_gateway_dead_letters", "Dead letters in the store", registry=r)
        self.dead_letter_bytes = Gauge("boucle_gateway_dead_letter_bytes",
                                       "Bytes of dead letters in the store (payloads and texts)", registry=r)
        self.spool_depth = Gauge("boucle_gateway_spool_depth", "Messages in the durable spool, not yet stored",
                                 registry=r)
        self.spool_full = Gauge("boucle_gateway_spool_full", "1 while the spool is at its bound (not acking)",
                                registry=r)
        self.store_errors = Counter("boucle_gateway_store_errors", "Failed store writes (retried)", registry=r)
        self.lag = Gauge("boucle_gateway_lag_seconds", "Event-time age of the newest stored reading when stored",
                         registry=r)
        self.spool_age = Gauge("boucle_gateway_spool_oldest_seconds", "Age of the oldest spooled message",
                               registry=r)
        self.session_lost = Counter("boucle_gateway_session_lost", "Reconnections where the broker had no session",
                                    registry=r)
        self.connected = Gauge("boucle_gateway_connected", "1 while connected to the broker", registry=r)
        self.ledger_sealed = Counter("boucle_gateway_ledger_sealed", "Ledger entries sealed (days and their late "
                                     "versions)", registry=r)
        self.ledger_mismatches = Gauge("boucle_gateway_ledger_mismatches", "Sealed days (or chains) the store no longer "
                                       "matches, at the last ledger round", registry=r)
        self.stage_restarts = Counter("boucle_gateway_stage_restarts", "Stage threads restarted after a failure",
                                      ["stage"], registry=r)


def serve_metrics(metrics: GatewayMetrics, health: Callable[[], dict], port: int,
                  host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve /metrics and /healthz on a background thread; returns the server (call shutdown())."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                body, ctype, status = generate_latest(metrics.registry), CONTENT_TYPE_LATEST, 200
            elif self.path == "/healthz":
                state = health()
                body = json.dumps(state).encode()
                ctype, status = "application/json", 200 if state.get("ok") else 503
            else:
                body, ctype, status = b"not found\n", "text/plain", 404
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="gateway-metrics", daemon=True).start()
    return server
