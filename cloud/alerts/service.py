"""The API service's alert loop: evaluate the rules when the store's data version (or the
registry) changed, or `recheck_s` after the last evaluation (a silent device changes
nothing in the store), and deliver what is due."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from boucle.registry import RegistryFile
from boucle.settings import ApiSettings, SettingsError
from boucle.storage import Store
from cloud.alerts.delivery import channels_of, deliver_due
from cloud.alerts.observe import evaluate_territory
from cloud.book import Book
from cloud.indicators import References, load_references

log = logging.getLogger("boucle.alerts")


def book_path(settings: ApiSettings) -> str:
    """BOUCLE_ALERTS_DB, else `alerts.db` beside an SQLite store, else .boucle/alerts.db."""
    if settings.alerts_db:
        return settings.alerts_db
    url = settings.store_url
    if "://" not in url or url.startswith("sqlite:///"):
        return str(Path(url.removeprefix("sqlite:///")).parent / "alerts.db")
    return ".boucle/alerts.db"


class AlertService:
    """Evaluates and delivers alerts; `start()` runs it on a thread, `tick()` once."""

    def __init__(self, settings: ApiSettings, registry_file: RegistryFile, store: Store, book: Book,
                 references: References | None = None):
        self.settings, self.registry_file, self.store, self.book = settings, registry_file, store, book
        self.references = references or load_references()
        self.channels = channels_of(settings)
        self._seen: tuple[object, object] | None = None
        self._evaluated_at = float("-inf")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def evaluate(self, now: float | None = None, territories: list[str] | None = None) -> list[dict]:
        """Run every territory's rules (or these territories') now; the alerts that changed."""
        now = time.time() if now is None else now
        registry = self.registry_file.current()
        changed = []
        with self._lock:
            for t in registry.territories:
                if territories is not None and t.id not in territories:
                    continue
                findings, evaluated = evaluate_territory(self.store, registry, t, now, self.references)
                changed += self.book.apply(findings, evaluated, now, list(self.channels))
            if territories is None:
                self._evaluated_at = now
        if changed:
            self._wake.set()
        return changed

    def acknowledge(self, alert_id: int, by: str) -> dict | None:
        alert = self.book.acknowledge(alert_id, by, time.time(), list(self.channels))
        self._wake.set()
        return alert

    def deliver(self, now: float | None = None) -> int:
        return deliver_due(self.book, self.channels, time.time() if now is None else now,
                           self.settings.alerts_retry_s, self.settings.alerts_max_attempts)

    def tick(self, now: float | None = None) -> None:
        """One turn of the loop: evaluate if there is news (or it is time), deliver what is due."""
        now = time.time() if now is None else now
        seen = (self.store.data_version(), self.registry_file.current())
        if seen != self._seen or now - self._evaluated_at >= self.settings.alerts_recheck_s:
            self._seen = seen
            self.evaluate(now)
        self.deliver(now)

    def start(self) -> AlertService:
        if self.settings.alerts_interval_s > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        next_check = time.monotonic() + self.settings.alerts_interval_s
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + self.settings.alerts_interval_s
                    self.tick()
                else:
                    self.deliver()
            except Exception:  # a store outage or a bad row must not end the loop
                log.exception("alert evaluation failed; trying again in %g s", self.settings.alerts_interval_s)
            self._wake.wait(min(1.0, self.settings.alerts_interval_s))
            self._wake.clear()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(15)
            self._thread = None
        for channel in self.channels.values():
            close = getattr(channel, "close", None)
            if close is not None:
                close()


NO_BOOK = "off"
"""BOUCLE_ALERTS_DB=off: this process keeps no alert book, evaluates and delivers nothing,
and answers the book's routes (alerts, exchanges) 503: another process serves them."""


def alert_service(ctx) -> AlertService | None:
    """The alert service of an API context (cloud.access.Context), None with
    BOUCLE_ALERTS_DB=off; SettingsError for a webhook without its secret."""
    s = ctx.settings
    if s.alerts_db == NO_BOOK:
        return None
    if s.alerts_webhook_url:
        if not s.alerts_webhook_url.startswith(("http://", "https://")):
            raise SettingsError("BOUCLE_ALERTS_WEBHOOK_URL: use an http:// or https:// URL")
        if len(s.alerts_webhook_secret) < 16:
            raise SettingsError("BOUCLE_ALERTS_WEBHOOK_SECRET: set a secret of at least 16 characters with the "
                                "webhook URL (the receiver checks the signature with it), e.g. "
                                "python -c 'import secrets; print(secrets.token_hex(32))'")
    return AlertService(s, ctx.registry_file, ctx.store, Book(book_path(s)), ctx.references)
