"""Readings stamped ahead of the gateway clock by less than the allowed skew: taken as
stamped (device and gateway clocks differ, and rewriting ts would move the reading to
another window), counted in boucle_gateway_readings_ahead, and logged once per device.
Against a real Mosquitto and the gateway."""

from __future__ import annotations

import json
import logging
import time

from boucle.storage.sqlite import SQLiteStore
from gateway.output import parse_batch
from gateway.spool import Spooled
from tests.gateway.test_ingest import (
    gateway_for,
    metrics_showing,
    publish_all,
    publisher,
    wait_until,
)
from tests.servers import free_port

DEVICE = "ecully-fablab-grid"


def batch(boot: int, stamps: list[int]) -> tuple[str, bytes]:
    readings = [{"seq": i, "ts": ts, "energy_wh": 1000 + i} for i, ts in enumerate(stamps)]
    return f"boucle/v1/{DEVICE}/telemetry", json.dumps(
        {"v": 1, "device": DEVICE, "boot": boot, "readings": readings}).encode()


def test_readings_ahead_are_counted_against_the_time_of_receipt():
    received = 1767225600.25
    spooled = [Spooled(1, received, *batch(1, [1767225500, 1767225600, 1767225601, 1767225700]), False),
               Spooled(2, received, *batch(2, [1767225590]), False)]
    parsed = parse_batch(spooled, "boucle/v1", None, now=received + 3600, max_future_skew_s=300,
                         max_payload_bytes=8192)
    assert [r[3] for r in parsed.readings] == [1767225500, 1767225600, 1767225601, 1767225700, 1767225590]
    assert parsed.readings_ahead == 2  # 1767225600 was taken before the gateway's 1767225600.25
    assert parsed.ahead == {DEVICE: 1767225700 - received}


def test_readings_ahead_are_stored_as_stamped_counted_and_logged_once(tmp_path, mosquitto, caplog):
    db = tmp_path / "b.db"
    metrics_port = free_port()
    gateway = gateway_for(mosquitto, db, metrics_port)
    client = publisher(mosquitto.port)
    try:
        now = int(time.time())
        with caplog.at_level(logging.WARNING, logger="boucle.gateway"):
            publish_all(client, [batch(1, [now - 120, now - 60]),            # behind: nothing to say
                                 batch(2, [now - 60, now + 120, now + 180]),  # two ahead (skew: 300 s)
                                 batch(3, [now + 150])])                      # a third
            store = SQLiteStore(db)
            assert wait_until(lambda: store.reading_counts([DEVICE], 0, 2**31)[DEVICE] == 6)
        stamps = [r.ts for r in store.readings(DEVICE, 0, 2**31, ["energy_wh"])]
        assert sorted(stamps) == sorted([now - 120, now - 60, now - 60, now + 120, now + 180, now + 150])
        assert "boucle_gateway_readings_ahead_total 3.0" in metrics_showing(
            metrics_port, "boucle_gateway_readings_ahead_total 3.0")
        notices = [r.getMessage() for r in caplog.records if "ahead of the gateway clock" in r.getMessage()]
        assert len(notices) == 1 and DEVICE in notices[0], notices
    finally:
        client.disconnect()
        gateway.stop()
