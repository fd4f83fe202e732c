"""The dead-letter store is bounded per device and in all, in letters and in bytes; the
oldest go first, what was dropped is counted, and an ALARM is logged once when a bound is
reached. The same outcome on both stores (real SQLite, real InfluxDB), and through the
gateway against a real Mosquitto (the issue's case, scaled down: a flood of 8 KB garbage
from one device used to grow the store by ~8.7 KB a message, without end)."""

from __future__ import annotations

import logging
import random
import sqlite3

import pytest

from boucle.settings import GatewaySettings, SettingsError, load_settings
from boucle.storage import DeadLetter, DeadLetterBounds, open_store
from boucle.storage.dead_letters import letter_size
from gateway.service import Gateway
from gateway.spool import Spool
from tests.conftest import EXAMPLE_REGISTRY
from tests.gateway.test_ingest import metrics_showing, publish_all, publisher, telemetry, wait_until
from tests.servers import free_port

WAIT = 60  # seconds: a bound on waiting, never an assertion on speed
FLOODER, OTHER = "ecully-fablab-grid", "ecully-school-grid"


def letter(i: int, device: str, size: int = 100) -> DeadLetter:
    return DeadLetter(1767225000.0 + i, f"boucle/v1/{device}/telemetry", "not_json", "", "not UTF-8 JSON",
                      bytes([i % 256]) * size, key=f"{i:032x}", device=device)


def kept(store) -> list[int]:
    return sorted(int(d.key, 16) for d in store.dead_letters(10_000))


def test_oldest_letters_go_first_past_each_bound(store_url):
    store = open_store(store_url)
    try:
        store.write_dead_letters([letter(i, FLOODER if i % 3 else OTHER) for i in range(30)])  # 20 and 10
        one = letter_size(letter(0, FLOODER))
        assert store.trim_dead_letters(DeadLetterBounds()).letters == 30  # nothing over: nothing dropped

        # Per device, in letters: the flooder keeps its newest 10; the other device is at the bound.
        trim = store.trim_dead_letters(DeadLetterBounds(per_device=10))
        assert (trim.dropped_device, trim.dropped_total, trim.devices_over, trim.over_total) == (
            10, 0, (FLOODER,), False)
        flooder, other = [i for i in range(30) if i % 3], list(range(0, 30, 3))
        assert kept(store) == sorted(flooder[-10:] + other)
        assert (trim.letters, trim.bytes) == (20, 20 * one)

        # Per device, in bytes: room for 5 letters of each device.
        trim = store.trim_dead_letters(DeadLetterBounds(device_bytes=5 * one + one // 2))
        assert (trim.dropped_device, sorted(trim.devices_over)) == (10, sorted([FLOODER, OTHER]))
        assert kept(store) == sorted(flooder[-5:] + other[-5:])

        # In all, in letters, then in bytes: the oldest of any device.
        trim = store.trim_dead_letters(DeadLetterBounds(total=7))
        assert (trim.dropped_device, trim.dropped_total, trim.over_total, trim.letters) == (0, 3, True, 7)
        assert kept(store) == sorted(flooder[-5:] + other[-5:])[-7:]
        trim = store.trim_dead_letters(DeadLetterBounds(total_bytes=2 * one))
        assert (trim.dropped_total, trim.letters, trim.bytes) == (5, 2, 2 * one)
        assert kept(store) == [28, 29]
        assert [d.device for d in store.dead_letters()] == [FLOODER, FLOODER]  # read back
    finally:
        store.close()


def test_a_sqlite_store_from_before_the_bounds_is_migrated(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE dead_letters (id INTEGER PRIMARY KEY, received REAL NOT NULL, topic TEXT NOT NULL, "
                "error TEXT NOT NULL, path TEXT NOT NULL, message TEXT NOT NULL, payload BLOB NOT NULL, key TEXT)")
    old.executemany("INSERT INTO dead_letters (received, topic, error, path, message, payload, key) "
                    "VALUES (?, ?, 'schema', 'v', 'm', ?, ?)",
                    [(float(i), f"boucle/v1/{FLOODER}/telemetry", b"{}" * 50, f"old-{i}") for i in range(5)]
                    + [(9.0, "elsewhere", b"?", "odd")])
    old.commit()
    old.close()
    store = open_store(f"sqlite:///{path}")
    try:
        letters = store.dead_letters()
        assert sorted({d.device for d in letters}) == ["", FLOODER]
        sizes = sum(letter_size(d) for d in letters)
        assert store.trim_dead_letters(DeadLetterBounds()).bytes == sizes
        store.write_dead_letters([letter(100, FLOODER)])
        trim = store.trim_dead_letters(DeadLetterBounds(per_device=2))
        assert trim.dropped_device == 4 and trim.letters == 3
        assert sorted(d.key for d in store.dead_letters()) == ["00000000000000000000000000000064", "odd", "old-4"]
    finally:
        store.close()


def test_the_dedup_index_of_dead_letters_is_capped(tmp_path):
    spool = Spool(tmp_path / "spool.db", 100)
    spool.remove([1], letters=[(f"k{i}", float(i)) for i in range(50)])
    assert spool.cap_letters(20) == 30
    assert spool.unseen_letters(["k29", "k30", "k49"]) == {"k29"}
    assert spool.cap_letters(20) == 0
    spool.close()


def test_bounds_that_cannot_work_are_refused_with_the_variable():
    for name, value in (("BOUCLE_DEAD_LETTERS_MAX_PER_DEVICE", "0"), ("BOUCLE_DEAD_LETTERS_MAX_BYTES", "4096")):
        with pytest.raises(SettingsError, match=name):
            Gateway(load_settings(GatewaySettings, {name: value, "BOUCLE_REGISTRY": str(EXAMPLE_REGISTRY)}))


def test_a_garbage_flood_through_the_gateway_stays_within_the_bounds(tmp_path, mosquitto, store_url, caplog):
    metrics_port = free_port()
    settings = load_settings(GatewaySettings, {}, mqtt_port=mosquitto.port, store_url=store_url,
                             registry=str(EXAMPLE_REGISTRY), metrics_port=metrics_port, client_id="flood-gateway",
                             spool_path=str(tmp_path / "spool.db"), dead_letters_max_per_device=40,
                             dead_letters_max=45, batch_size=50)
    gateway = Gateway(settings).start()
    store = open_store(store_url)
    client = publisher(mosquitto.port)
    rng = random.Random(5)
    try:
        with caplog.at_level(logging.ERROR, logger="boucle.gateway"):
            publish_all(client, [(f"boucle/v1/{FLOODER}/telemetry", b"\xff" + rng.randbytes(8191))
                                 for _ in range(300)])
            publish_all(client, [(f"boucle/v1/{OTHER}/telemetry", b"garbage %d" % i) for i in range(10)]
                        + [telemetry(FLOODER, 1, range(1, 6))])  # and good readings after the flood
            assert wait_until(lambda: store.reading_counts([FLOODER], 0, 2**31)[FLOODER] == 5
                              and gateway.spool.depth == 0, WAIT)
            # The newest 40 of the flooder, then the total bound (45) took the oldest 5 of all.
            expected = ('boucle_gateway_dead_letters_dropped_total{bound="device"} 260.0',
                        'boucle_gateway_dead_letters_dropped_total{bound="total"} 5.0',
                        "boucle_gateway_dead_letters 45.0")
            metrics = metrics_showing(metrics_port, *expected)  # the trim follows the batch's write
        assert all(line in metrics for line in expected), metrics
        letters = store.dead_letters(1000)
        by_device = {d: sum(1 for x in letters if x.device == d) for d in (FLOODER, OTHER)}
        assert by_device == {FLOODER: 35, OTHER: 10}, by_device
        assert max(len(d.payload) for d in letters) == 8192
        assert f"boucle_gateway_dead_letter_bytes {float(sum(letter_size(d) for d in letters))}" in metrics
        alarms = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ALARM")]
        assert len([a for a in alarms if FLOODER in a]) == 1 and len(alarms) == 2, alarms
    finally:
        client.disconnect()
        gateway.stop()
        store.close()
