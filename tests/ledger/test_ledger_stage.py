"""The gateway's ledger stage on real stores: closed days sealed, late readings as new
versions, and a tampered reading, a dropped one and a replaced day each reported."""

from __future__ import annotations

from boucle import ledger
from boucle.protocol import INTEGER_FIELDS
from boucle.storage.ledger_days import day_roots
from gateway.ledger_stage import ledger_round
from tests.ledger.conftest import DAY0, day_readings, drop, replace_day, rewrite_entry, tamper

CLOSE = 6 * 3600
NOW = DAY0 + 2 * 86400 + CLOSE + 60  # both days closed


def test_closed_days_are_sealed_late_readings_versioned_and_tampering_reported(store, registry):
    assert ledger_round(store, registry, DAY0 + 86400 + CLOSE - 60, CLOSE, 7).sealed == []  # day 0 still open
    first = ledger_round(store, registry, NOW, CLOSE, 7)
    assert [(e.day, e.version, e.count) for e in first.sealed] == [(DAY0, 1, 432), (DAY0 + 86400, 1, 432)]
    chain = store.ledger("vallee")
    assert chain == first.sealed and ledger.chain_problems(chain) == []
    # the same root from either store as from the readings written: what is hashed is the data, not the store
    written = [ledger.site_tree(site, {d: [ledger.reading_bytes(r.device, r.ts, r.boot, r.seq, r.values, INTEGER_FIELDS)
                                           for r in day_readings(d, DAY0)] for d in devices}).root()
               for site, devices in (("atelier", ("atelier-grid", "atelier-pv")), ("fablab", ("fablab-grid",)))]
    assert chain[0].root == ledger.day_root(written)
    assert {s.site: s.count for s in chain[0].sites} == {"atelier": 288, "fablab": 144}
    quiet = ledger_round(store, registry, NOW + 300, CLOSE, 7, audit=True)
    assert quiet.sealed == [] and quiet.mismatches == []

    # a late reading (stored after the day was sealed) of day 0: its version 2, chained
    late = day_readings("fablab-grid", DAY0)[0]
    store.write_readings([type(late)(late.device, 2, 0, DAY0 + 30, {"energy_wh": 1, "power_w": 5.0})], NOW + 400)
    second = ledger_round(store, registry, NOW + 600, CLOSE, 7)
    assert [(e.day, e.version, e.count, e.seq) for e in second.sealed] == [(DAY0, 2, 433, 2)]
    assert second.sealed[0].prev == chain[-1].digest and second.mismatches == []

    # a stored reading changed: found by the audit, named by site, not sealed over
    tamper(store, "atelier-pv", DAY0 + 86400 + 3600, 1234.5)
    found = ledger_round(store, registry, NOW + 900, CLOSE, 7, audit=True)
    assert found.sealed == []
    assert [(m.day, m.territory) for m in found.mismatches] == [(DAY0 + 86400, "vallee")]
    assert "atelier: 288 readings sealed, 288 stored, same count but other readings" in found.mismatches[0].problem


def test_a_dropped_reading_is_reported_without_an_audit(store, registry):
    ledger_round(store, registry, NOW, CLOSE, 7)
    drop(store, "fablab-grid", DAY0 + 7200)
    found = ledger_round(store, registry, NOW + 300, CLOSE, 7)  # counted: one reading fewer
    assert found.sealed == []
    assert [m.day for m in found.mismatches] == [DAY0]
    assert "fablab: 144 readings sealed, 143 stored" in found.mismatches[0].problem


def test_a_replaced_day_breaks_the_chain(store, registry):
    chain = ledger_round(store, registry, NOW, CLOSE, 7).sealed
    # day 0's readings replaced, and its entry sealed again to match them
    replace_day(store, ("atelier-grid", "atelier-pv", "fablab-grid"), DAY0, watts=800.0)
    resealed = ledger.seal("vallee", DAY0, day_roots(store, registry, "vallee", DAY0).every, [], chain[0].sealed_at)
    rewrite_entry(store, resealed)
    found = ledger_round(store, registry, NOW + 300, CLOSE, 7, audit=True)
    assert found.sealed == []
    assert [m.problem for m in found.mismatches] == [
        f"entry 1 (day {DAY0 + 86400} v1): does not follow the entry before it"]


def test_a_running_gateway_seals_versions_and_raises_the_alarm_on_tampering(tmp_path, mosquitto, registry_path,
                                                                            caplog):
    """The gateway's ledger stage in a running gateway (real Mosquitto, SQLite): the stored
    past days are sealed, a late reading sent through the broker makes its day's next
    version, a changed reading is reported (log ALARM, metric)."""
    import json
    import logging

    from boucle.protocol import Reading
    from boucle.settings import GatewaySettings, load_settings
    from boucle.storage import open_store
    from gateway.service import Gateway
    from tests.gateway.test_ingest import metrics_showing, publish_all, publisher, wait_until
    from tests.servers import free_port

    url = f"sqlite:///{tmp_path / 'g.db'}"
    store = open_store(url)
    store.write_readings([Reading("fablab-grid", 1, n, DAY0 + 600 * n, {"energy_wh": 100 * n}) for n in range(10)],
                         DAY0 + 86400)
    port = free_port()
    settings = load_settings(GatewaySettings, {}, mqtt_port=mosquitto.port, store_url=url, registry=str(registry_path),
                             metrics_port=port, client_id="ledger-gateway", spool_path=str(tmp_path / "spool.db"),
                             ledger_interval_s=0.2, ledger_audit_rounds=1, ledger_lookback_days=400,
                             ledger_settle_s=0.5)
    gateway = Gateway(settings).start()
    try:
        with caplog.at_level(logging.ERROR, logger="boucle.gateway"):
            assert wait_until(lambda: len(store.ledger("vallee")) >= 2, 30)
            assert store.ledger("vallee")[0].count == 10
            # a late reading of the sealed day, through the broker: the day's version 2
            publish_all(publisher(mosquitto.port), [("boucle/v1/fablab-grid/telemetry", json.dumps(
                {"v": 1, "device": "fablab-grid", "boot": 2, "readings": [{"seq": 1, "ts": DAY0 + 30,
                                                                           "energy_wh": 5}]}).encode())])
            assert wait_until(lambda: (DAY0, 2) in {(e.day, e.version) for e in store.ledger("vallee")}, 30)
            assert ledger.latest(store.ledger("vallee"))[DAY0].count == 11
            tamper(store, "fablab-grid", DAY0 + 600, 42.0)
            assert wait_until(lambda: "ALARM ledger of vallee: day 2026-03-28" in caplog.text, 30)
        assert metrics_showing(port, "boucle_gateway_ledger_mismatches 1.0")
    finally:
        gateway.stop()
        store.close()


def test_a_device_that_moved_during_the_day_counts_at_each_site_for_its_stay(tmp_path, registry_path):
    """Readings go to the site the device was at when taken: a move at 12:00 splits the day."""
    from boucle.registry import load_registry
    from boucle.storage import open_store
    from boucle.storage.ledger_days import day_count

    text = registry_path.read_text("utf-8").replace(
        'id = "fablab-grid"\nsite = "fablab"', 'id = "fablab-grid"\nsite = "fablab"\n'
        'moves = [{ site = "atelier", until = 2026-03-28T12:00:00Z }]')
    registry_path.write_text(text, "utf-8")
    moved = load_registry(registry_path)
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        store.write_readings(day_readings("fablab-grid", DAY0), DAY0 + 86400)
        roots = day_roots(store, moved, "vallee", DAY0).every
        assert {r.site: r.count for r in roots} == {"atelier": 72, "fablab": 72}
        assert day_count(store, moved, "vallee", DAY0) == 144
        (entry,) = ledger_round(store, moved, DAY0 + 86400 + CLOSE, CLOSE, 7).sealed
        assert entry.count == 144 and {s.site for s in entry.sites} == {"atelier", "fablab"}
    finally:
        store.close()
