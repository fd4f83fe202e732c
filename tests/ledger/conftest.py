"""A small territory (two sites, three meters, a reading every 10 minutes) in a real store,
SQLite or InfluxDB, and ways to tamper with what it holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from boucle.protocol import Reading
from boucle.registry import load_registry
from boucle.storage import open_store

DAY0 = 1774656000  # 2026-03-28 00:00 UTC
STEP = 600
RECEIVED = DAY0 + 2 * 86400 + 3600  # when the test's readings reached the store (before sealing)
REGISTRY = """
[waste_streams]
residual = "incineration_energy_recovery"

[[territories]]
id = "vallee"
name = "Vallée"
kind = "commune"
population = 1000
centroid = [45.0, 4.0]

[[sites]]
id = "atelier"
territory = "vallee"
name = "Atelier"
kind = "sme_workshop"
location = [45.0, 4.0]
employees = 5

[[sites]]
id = "fablab"
territory = "vallee"
name = "Fablab"
kind = "fablab"
location = [45.001, 4.001]

[[devices]]
id = "atelier-grid"
site = "atelier"
kind = "energy"
channel = "grid_import"
rated_power_w = 9000

[[devices]]
id = "atelier-pv"
site = "atelier"
kind = "energy"
channel = "pv_production"
rated_power_w = 3000

[[devices]]
id = "fablab-grid"
site = "fablab"
kind = "energy"
channel = "grid_import"
rated_power_w = 6000
"""


def day_readings(device: str, day: int, watts: float = 1000.0) -> list[Reading]:
    """A meter's readings of a UTC day (ledger tests): `watts` all day long."""
    out = []
    for ts in range(day, day + 86400, STEP):
        n = (ts - DAY0) // STEP
        out.append(Reading(device, 1, n, ts, {"energy_wh": int(n * STEP * watts / 3600), "power_w": watts}))
    return out


@pytest.fixture
def registry_path(tmp_path) -> Path:
    path = tmp_path / "registry.toml"
    path.write_text(REGISTRY, "utf-8")
    return path


@pytest.fixture
def registry(registry_path):
    return load_registry(registry_path)


@pytest.fixture(params=["sqlite", "influx"])
def store(request, tmp_path, registry):
    """Two days of the territory's three meters, in SQLite or a real InfluxDB."""
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'b.db'}")
    else:
        influxdb = request.getfixturevalue("influxdb")
        s = open_store(f"influx+http://127.0.0.1:{influxdb.port}/ledger_test")
    for device in registry.devices:
        s.write_readings([*day_readings(device.id, DAY0), *day_readings(device.id, DAY0 + 86400)], RECEIVED)
    yield s
    s.close()


def tamper(store, device: str, ts: int, power_w: float) -> None:
    """Change a stored reading's power behind the gateway's back."""
    if hasattr(store, "write_lines"):
        store.write_lines([f"readings,device={device} power_w={power_w!r} {ts}"], "s")
    else:
        with store._conn() as conn:
            conn.execute("UPDATE readings SET power_w = ? WHERE device = ? AND ts = ?", (power_w, device, ts))


def drop(store, device: str, ts: int) -> None:
    """Delete a stored reading behind the gateway's back."""
    if hasattr(store, "write_lines"):
        store._query(f"DELETE FROM \"readings\" WHERE \"device\" = '{device}' AND time = {ts}s", method="POST")
    else:
        with store._conn() as conn:
            conn.execute("DELETE FROM readings WHERE device = ? AND ts = ?", (device, ts))


def replace_day(store, devices, day: int, watts: float) -> None:
    """Replace the devices' stored readings of a day with others, behind the gateway's back."""
    if not hasattr(store, "write_lines"):
        with store._conn() as conn:
            conn.execute("DELETE FROM readings WHERE ts >= ? AND ts < ?", (day, day + 86400))
    for device in devices:
        store.write_readings(day_readings(device, day, watts), RECEIVED)


def rewrite_entry(store, entry) -> None:
    """Overwrite a stored ledger entry behind the gateway's back (same territory and seq)."""
    from boucle.storage import ledger_sites_text

    if hasattr(store, "write_lines"):
        sites = ledger_sites_text(entry.sites).replace('"', '\\"')
        store.write_lines([(f'ledger,territory={entry.territory} day={entry.day}i,version={entry.version}i,'
                           f'count={entry.count}i,root="{entry.root.hex()}",prev="{entry.prev.hex()}",'
                           f'digest="{entry.digest.hex()}",sealed_at={entry.sealed_at!r},sites="{sites}" {entry.seq}')],
                          "s", rp=store.rollups_rp or None)
    else:
        with store._conn() as conn:
            conn.execute("DELETE FROM ledger WHERE territory = ? AND seq = ?", (entry.territory, entry.seq))
        store.append_ledger(entry)
