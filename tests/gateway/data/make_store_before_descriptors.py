"""Make tests/gateway/data/store-before-descriptors.db with main at 9ecea0a (before sensor
descriptors): readings of a meter and a bin, their rollups, a dead letter, a device state.
Run from an export of that commit: PYTHONPATH=export:export/firmware python this.py out.db"""
import sqlite3
import sys

from boucle.protocol import Reading
from boucle.registry import Device
from boucle.storage import DeadLetter, DeviceState
from boucle.storage.sqlite import SQLiteStore
from gateway.aggregate import recompute_rollups

path = sys.argv[1]
store = SQLiteStore(path)
t0 = 1767225600
meter = [Reading("old-meter", 1, i, t0 + 60 * i, {"energy_wh": 1000 + 7 * i, "power_w": 420.0, "voltage_v": 231.2})
         for i in range(30)]
bin_ = [Reading("old-bin", 1, i, t0 + 300 * i, {"weight_g": 500 + 150 * (i % 4), "temp_c": 6.5}) for i in range(10)]
store.write_readings(meter + bin_, received=t0 + 2000.0)
for d in (Device(id="old-meter", site="s", kind="energy", channel="grid_import", rated_power_w=9000),
          Device(id="old-bin", site="s", kind="waste", stream="residual")):
    recompute_rollups(store, d, t0, t0 + 3000)
store.write_dead_letters([DeadLetter(t0 + 1.0, "boucle/v1/old-meter/telemetry", "not_json", "", "not JSON", b"{oops", "k1", "old-meter")])
store.write_device_states([DeviceState("old-meter", "status", {"online": True, "boot": 1}, t0 + 5.0)])
store.close()
c = sqlite3.connect(path)
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
c.execute("PRAGMA journal_mode=DELETE")
c.close()
