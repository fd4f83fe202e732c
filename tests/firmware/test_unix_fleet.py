"""`boucle simulate --firmware N`: registry devices run by the firmware itself on virtual
boards (unix-port MicroPython), beside the modelled fleet, through the gateway into
SQLite; the ledger's truth holds for them as for the modelled devices. A board's signed
readings end in the gateway's daily ledger, and one is proven to belong to its day."""

from __future__ import annotations

import itertools
import time

from fastapi.testclient import TestClient

from boucle import ledger
from boucle.device_keys import generate_key
from boucle.registry import ApiKey, RegistryFile, hash_key, load_registry
from boucle.rollup import day_start
from boucle.settings import ApiSettings, GatewaySettings, SimulatorSettings, load_settings
from boucle.storage.sqlite import SQLiteStore
from cloud.app import create_app
from gateway.service import Gateway
from simulator.firmware_devices import pick
from simulator.ledger import read_ledger, totals
from simulator.run import run_simulation
from tests.conftest import EXAMPLE_REGISTRY, require_binary

HOURS = 3
MISSED = 2
"""Readings a board may not have sent by the end of the run (its last ones, powered off)."""


def test_three_registry_devices_on_the_firmware_beside_the_model(unix_micropython, mosquitto, tmp_path, caplog):
    # Yesterday 01:00–04:00 UTC, whatever the time now: a closed day for the ledger, and the
    # same modelled night every run. (Started 24 h before now, the window moved with the
    # clock; from 07:00 on it ended as the Fablab opened, and what flows after a board's last
    # reading, bounded below by two intervals of the mean power, no longer fitted.)
    start = day_start(int(time.time())) - 86400 + 3600
    end = start + HOURS * 3600
    registry = load_registry(EXAMPLE_REGISTRY)
    boards = [d.id for d in pick(registry, 3)]
    assert boards == ["ecully-fablab-grid", "ecully-fablab-pv", "ecully-fablab-laser"]  # PZEM, S0, CT
    db = tmp_path / "boucle.db"
    # one board and one modelled device have keys: the gateway takes their readings only signed
    keys = tmp_path / "device-keys"
    keys.write_text(f"ecully-fablab-grid:{generate_key()}\necully-bakery-grid:{generate_key()}\n")
    gateway = Gateway(load_settings(GatewaySettings, {}, mqtt_port=mosquitto.port, store_url=f"sqlite:///{db}",
                                    metrics_port=0, spool_path=str(tmp_path / "spool.db"),
                                    device_keys=str(keys), ledger_close_after_s=0,
                                    ledger_interval_s=0.5, ledger_settle_s=1)).start()
    try:
        sim = load_settings(SimulatorSettings, {}, mqtt_port=mosquitto.port, ledger=str(tmp_path / "ledger.jsonl"),
                            device_keys=str(keys))
        report = run_simulation(sim, start=start, end=end, speed=0, batch=10, state_path=tmp_path / "state.json",
                                firmware=3)
        devices = [d.id for d in registry.devices]
        store = SQLiteStore(db)
        deadline = time.monotonic() + 60
        while sum(store.reading_counts(devices, 0, 2**31).values()) < report.readings and time.monotonic() < deadline:
            time.sleep(0.2)
        counts = store.reading_counts(devices, 0, 2**31)
        assert sum(counts.values()) == report.readings
        assert store.dead_letters() == []  # the keyed ones signed: no bad_signature
        assert counts["ecully-fablab-grid"] and counts["ecully-bakery-grid"]
        # The signed board's readings of yesterday, a closed day, are sealed in the
        # territory's ledger by the gateway's ledger stage.
        signed = store.readings("ecully-fablab-grid", 0, 2**31, ["energy_wh"])[0]
        day = day_start(signed.ts)
        ecully = [d.id for d in registry.devices_of("ecully")]
        stored = sum(store.reading_counts(ecully, day, day + 86400).values())

        def sealed() -> ledger.LedgerEntry | None:
            return ledger.latest(store.ledger("ecully")).get(day)

        # every stored reading of the day, in its first version or (those the backfill
        # stored while the day was being sealed) a later one, and no alarm
        assert _wait(lambda: sealed() is not None and sealed().count == stored, 60), store.ledger("ecully")
        assert "ALARM ledger" not in caplog.text
    finally:
        gateway.stop()
    entry = sealed()
    assert ledger.chain_problems(store.ledger("ecully")) == []
    admin = "bk_fleet-ledger-admin"
    api = load_settings(ApiSettings, {}, registry=str(EXAMPLE_REGISTRY))
    with TestClient(create_app(api, registry_file=RegistryFile(EXAMPLE_REGISTRY), store=store,
                               extra_keys=[ApiKey(id="admin", sha256=hash_key(admin), admin=True)])) as client:
        proof = client.get(f"/v1/territories/ecully/ledger/{time.strftime('%Y-%m-%d', time.gmtime(day))}/proof",
                           params={"device": "ecully-fablab-grid", "ts": signed.ts}, headers={"X-API-Key": admin})
    assert proof.status_code == 200, proof.text
    assert proof.json()["valid"] and ledger.verify_proof(ledger.proof_of(proof.json()["proof"]), entry.root)
    # The entry records that the keyed board's readings were signed and checked, and that an
    # unkeyed board's were not (docs/ledger.md, "Signature checks").
    assert proof.json()["signature"] == "signed and checked"
    fablab_grid, fablab_pv = entry.signature_checks("ecully-fablab-grid"), entry.signature_checks("ecully-fablab-pv")
    assert fablab_grid[0] == fablab_grid[1] > 0 and fablab_pv[0] > 0 == fablab_pv[1]

    rows = read_ledger(tmp_path / "ledger.jsonl")
    ledger_readings = totals(rows, "device", "readings")
    for device in boards:
        # a reading per interval from each board, as counted by the ledger from what it published
        assert HOURS * 3600 // registry.device(device).interval_s - MISSED <= counts[device] == ledger_readings[device]
        stored = store.readings(device, 0, 2**31, ["energy_wh"])
        increments = sum(max(0, b.values["energy_wh"] - a.values["energy_wh"]) for a, b in itertools.pairwise(stored))
        assert increments == totals(rows, "device", "wh", device=device)[device]
    # the grid meter's PZEM counted the modelled energy to the Wh (its own register) from
    # its first reading on: what flowed before it (its baseline) and after the last is
    # outside, at most the baseline's interval and the MISSED ones of the site's mean power
    true = totals(rows, "device", "true_wh")["ecully-fablab-grid"]
    intervals = HOURS * 3600 // registry.device("ecully-fablab-grid").interval_s
    assert 0 <= true - totals(rows, "device", "wh")["ecully-fablab-grid"] <= (1 + MISSED) * true / intervals + 2
    # the boards reported their health with the firmware's version, not the model's, and
    # left their last will when the simulation powered them off
    states = store.device_states(boards)
    assert all(states[d]["health"].doc["fw"] == "0.1.0" for d in boards), states
    assert all(states[d]["status"].doc == {"v": 1, "online": False} for d in boards), states


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_boucle_up_with_two_devices_on_the_firmware(unix_micropython, tmp_path):
    import sqlite3

    from tests.e2e.test_up import start_up, stop

    require_binary("mosquitto", "mosquitto")
    proc, _url, _key, lines = start_up(tmp_path, "--firmware", "2", "--backfill", "6h")
    try:
        assert any(line.startswith("boards     2 of them on the firmware") for line in lines), lines
        db = tmp_path / "data" / "boucle.db"
        deadline = time.monotonic() + 90
        got = {}
        while time.monotonic() < deadline and len(got) < 2:
            time.sleep(1)
            with sqlite3.connect(db) as c:
                got = dict(c.execute("SELECT device, count(*) FROM readings WHERE device IN (?, ?) GROUP BY device",
                                     ("ecully-fablab-grid", "ecully-fablab-pv")).fetchall())
        assert set(got) == {"ecully-fablab-grid", "ecully-fablab-pv"}, got
        boards = tmp_path / "data" / "boards"
        assert sorted(p.name for p in boards.iterdir()) == ["ecully-fablab-grid", "ecully-fablab-pv"]
        assert (boards / "ecully-fablab-pv" / "flash" / "lib" / "boucle_fw" / "app.mpy").exists()
    finally:
        out = stop(proc)
    assert proc.returncode == 0, out
    assert "Traceback" not in out
