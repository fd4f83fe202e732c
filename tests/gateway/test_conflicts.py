"""Repeats of a reading identity (device, boot, seq): an identical one is a duplicate, one
with other content a conflict. The first copy stored wins on both stores, conflicts are
counted (boucle_gateway_readings_conflicting) and logged once per device. A seq lower than
one already seen, under an identity never stored, is a reading like any other (a device's
buffer replays, and QoS 1 redelivers, out of order). Against a real Mosquitto, SQLite and
InfluxDB, with the gateway."""

from __future__ import annotations

import json
import logging
import time

import pytest

from boucle.settings import GatewaySettings, load_settings
from boucle.storage import open_store
from gateway.output import Parsed, drop_repeats, write_parsed
from gateway.service import Gateway
from gateway.spool import Spool
from tests.conftest import EXAMPLE_REGISTRY
from tests.gateway.test_ingest import metrics_showing, publish_all, publisher, wait_until
from tests.servers import free_port

DEVICE = "ecully-fablab-grid"
T0 = int(time.time()) - 7200
WAIT = 30  # seconds: a bound on waiting, never an assertion on speed


def reading(seq: int, energy: int | None = None, ts: int | None = None) -> dict:
    return {"seq": seq, "ts": T0 + 60 * seq if ts is None else ts, "energy_wh": 1000 + seq if energy is None else energy}


def message(*readings: dict) -> tuple[str, bytes]:
    return f"boucle/v1/{DEVICE}/telemetry", json.dumps(
        {"v": 1, "device": DEVICE, "boot": 3, "readings": list(readings)}).encode()


def test_the_first_copy_wins_and_conflicts_are_counted_once_logged(tmp_path, mosquitto, store_url, caplog):
    metrics_port = free_port()
    settings = load_settings(GatewaySettings, {}, mqtt_port=mosquitto.port, store_url=store_url,
                             registry=str(EXAMPLE_REGISTRY), metrics_port=metrics_port, client_id="conflict-gateway",
                             spool_path=str(tmp_path / "spool.db"))
    gateway = Gateway(settings).start()
    store = open_store(store_url)
    client = publisher(mosquitto.port)

    def stored() -> dict[int, tuple[int, int]]:
        return {r.seq: (r.ts, r.values["energy_wh"]) for r in store.readings(DEVICE, 0, 2**31, ["energy_wh"])}

    try:
        with caplog.at_level(logging.WARNING, logger="boucle.gateway"):
            publish_all(client, [message(*(reading(s) for s in range(1, 6)))])
            assert wait_until(lambda: len(stored()) == 5, WAIT)
            publish_all(client, [
                message(reading(4), reading(5, energy=99), *(reading(s) for s in range(6, 9))),  # 4 again, 5 other
                message(reading(2), reading(3)),          # replayed: older seqs, same content
                message(reading(0)),                      # an older seq never stored: a reading
                message(reading(1, ts=T0 + 30)),          # seq 1 again, another time
            ])
            assert wait_until(lambda: gateway.metrics.messages._value.get() == 5 and gateway.spool.depth == 0, WAIT)
        assert stored() == {s: (T0 + 60 * s, 1000 + s) for s in range(9)}
        expected = ("boucle_gateway_readings_conflicting_total 2.0", "boucle_gateway_readings_duplicate_total 3.0",
                    "boucle_gateway_readings_stored_total 9.0")
        metrics = metrics_showing(metrics_port, *expected)
        assert all(line in metrics for line in expected), metrics
        notices = [r.getMessage() for r in caplog.records if "again with other content" in r.getMessage()]
        assert len(notices) == 1 and "boot 3 seq 5" in notices[0], notices
    finally:
        client.disconnect()
        gateway.stop()
        store.close()


@pytest.mark.parametrize("store_dedups", [True, False])
def test_a_conflict_inside_one_batch_keeps_the_first_copy(tmp_path, store_dedups):
    """Both copies in one spooled batch: decided before the store sees them."""
    spool = Spool(tmp_path / "spool.db", 100)
    store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
    first = (DEVICE, 3, 7, T0, 1007, None, None, None, None, None, None, None)
    again = (DEVICE, 3, 7, T0, 1007, None, None, None, None, None, None, None)
    other = (DEVICE, 3, 7, T0, 2000, None, None, None, None, None, None, None)
    parsed = Parsed(readings=[first, again, other])
    drop_repeats(parsed, spool, store_dedups)
    assert parsed.readings == [first]
    assert (parsed.duplicates, parsed.conflicts) == (1, [(first, other)])
    write_parsed(parsed, store)
    assert parsed.stored == 1
    spool.close()
    store.close()
