"""The ledger records whether readings' signatures were checked: per device and day, sealed
in the entry's digest, from the gateway's parse stage to the store (SQLite, InfluxDB), the
ledger, `boucle verify` and the proof endpoint; entries sealed before that stay readable."""

from __future__ import annotations

import dataclasses

from boucle import ledger
from boucle.device_keys import generate_key
from boucle.protocol import reading_row
from boucle.storage import SIG_CHECKED
from gateway.ledger_stage import ledger_round
from gateway.output import parse_batch, write_parsed
from gateway.parse import Signing, hmac_sha256_hex
from gateway.spool import Spooled
from tests.ledger.conftest import DAY0, day_readings

CLOSE = 6 * 3600
DAY2 = DAY0 + 2 * 86400
NOW = DAY2 + 86400 + CLOSE + 60  # days 0 to 2 closed


def signed(key: bytes, body: bytes) -> bytes:
    """A telemetry payload signed as the firmware signs it (docs/protocol.md, "Signatures")."""
    return body[:-1] + b',"sig":"' + hmac_sha256_hex(key, body) + b'"}'


def test_the_parse_stage_marks_a_keyed_devices_readings_checked_in_the_store(store):
    key = bytes.fromhex(generate_key())
    body = b'{"v":1,"device":"%s","boot":9,"readings":[{"seq":1,"ts":%d,"energy_wh":5}]}'
    messages = [Spooled(1, DAY2, "boucle/v1/atelier-grid/telemetry", signed(key, body % (b"atelier-grid", DAY2)),
                        False),
                Spooled(2, DAY2, "boucle/v1/fablab-grid/telemetry", body % (b"fablab-grid", DAY2), False)]
    parsed = parse_batch(messages, "boucle/v1", None, now=DAY2 + 1, max_future_skew_s=300, max_payload_bytes=8192,
                         signing=Signing({"atelier-grid": key}))
    assert parsed.letters == [] and parsed.checked == {"atelier-grid"}
    write_parsed(parsed, store)
    flags = {d: [r.values[SIG_CHECKED] for r in store.readings(d, DAY2, DAY2 + 1, [SIG_CHECKED]) if r.ts == DAY2]
             for d in ("atelier-grid", "fablab-grid")}
    assert {d: [bool(v) for v in vs] for d, vs in flags.items()} == {"atelier-grid": [True], "fablab-grid": [False]}


def test_entries_count_checked_readings_per_device_in_their_digest(store, registry):
    """Day 2: atelier-grid signed all day, atelier-pv keyed at noon, fablab-grid unsigned."""
    pv = day_readings("atelier-pv", DAY2)
    store.write_rows([reading_row(r) for r in day_readings("atelier-grid", DAY2)], DAY2 + 86400, {"atelier-grid"})
    store.write_rows([reading_row(r) for r in pv[:72]], DAY2 + 86400)
    store.write_rows([reading_row(r) for r in pv[72:]], DAY2 + 86400, {"atelier-pv"})
    store.write_readings(day_readings("fablab-grid", DAY2), DAY2 + 86400)
    sealed = ledger_round(store, registry, NOW, CLOSE, 7).sealed
    assert [e.day for e in sealed] == [DAY0, DAY0 + 86400, DAY2]
    entry = store.ledger("vallee")[2]
    assert entry == sealed[2]  # the checks are stored and read back
    assert entry.checks == (ledger.DeviceCheck("atelier", "atelier-grid", 144, 144),
                            ledger.DeviceCheck("atelier", "atelier-pv", 144, 72),
                            ledger.DeviceCheck("fablab", "fablab-grid", 144, 0))
    assert [ledger.signature_word(c.count, c.checked) for c in entry.checks] == [
        "signed and checked", "partly signed and checked (72 of 144)", "unsigned"]
    assert {c.checked for c in store.ledger("vallee")[0].checks} == {0}  # the fixture's readings: unsigned
    assert ledger.chain_problems(store.ledger("vallee")) == []
    # The checks are in the digest: claiming fablab-grid's readings checked breaks the entry.
    claimed = dataclasses.replace(entry, checks=(*entry.checks[:2], ledger.DeviceCheck("fablab", "fablab-grid", 144, 144)))
    assert ledger.chain_problems([*store.ledger("vallee")[:2], claimed]) == [
        f"entry 2 (day {DAY2} v1): its digest does not match its content"]
    # ... and must count the entry's readings.
    recounted = ledger.seal("vallee", DAY2, entry.sites, store.ledger("vallee")[:2], entry.sealed_at,
                            (*entry.checks[:2], ledger.DeviceCheck("fablab", "fablab-grid", 140, 0)))
    assert ledger.chain_problems([*store.ledger("vallee")[:2], recounted]) == [
        f"entry 2 (day {DAY2} v1): its signature checks do not count its sites' readings"]


def test_an_entry_sealed_before_the_checks_stays_valid_and_readable(store, registry):
    """An entry without checks (as sealed before them): its format-1 digest holds, the
    stores and exports read it back with checks None, and later entries chain after it."""
    from boucle.storage.ledger_days import day_roots

    old = ledger.seal("vallee", DAY0, day_roots(store, registry, "vallee", DAY0).every, [], DAY0 + 86400 + CLOSE)
    assert old.checks is None and store.append_ledger(old)
    assert old.digest == ledger.entry_digest("vallee", 0, DAY0, 1, old.count, old.root, ledger.GENESIS)
    doc = ledger.entry_doc(old)
    assert "checks" not in doc and ledger.entry_of(doc) == old
    ledger_round(store, registry, NOW, CLOSE, 7, audit=True)
    chain = store.ledger("vallee")
    assert chain[0] == old and [e.checks is None for e in chain] == [True, False, False]
    assert ledger.chain_problems(chain) == []


def test_verify_and_the_proof_say_signed_and_checked_or_unsigned(store, registry, registry_path, tmp_path, capsys):
    from fastapi.testclient import TestClient

    from boucle.registry import RegistryFile
    from boucle.settings import ApiSettings, load_settings
    from cloud.app import create_app
    from tests.ledger.test_verify_and_consent import ADMIN, KEYS, verify

    store.write_rows([reading_row(r) for r in day_readings("atelier-grid", DAY2)], DAY2 + 86400, {"atelier-grid"})
    store.write_readings(day_readings("fablab-grid", DAY2), DAY2 + 86400)
    ledger_round(store, registry, NOW, CLOSE, 7)
    settings = load_settings(ApiSettings, {}, registry=str(registry_path), rate_limit_per_s=1000.0,
                             rate_limit_burst=10_000)
    with TestClient(create_app(settings, registry_file=RegistryFile(registry_path), store=store,
                               extra_keys=KEYS)) as client:
        def proof(device):
            return client.get("/v1/territories/vallee/ledger/2026-03-30/proof", params={"device": device, "ts": DAY2},
                              headers={"X-API-Key": ADMIN}).json()

        got = proof("atelier-grid")
        assert got["valid"] and got["signature"] == "signed and checked"
        assert got["device_checks"] == {"readings": 144, "checked": 144}
        assert proof("fablab-grid")["signature"] == "unsigned"
        doc = client.get("/v1/territories/vallee/export", params={"from": "2026-03-30", "to": "2026-03-31"},
                         headers={"X-API-Key": ADMIN}).json()
    assert doc["ledger"][0]["checks"][0] == {"site": "atelier", "device": "atelier-grid", "count": 144, "checked": 144}
    code, out = verify(tmp_path, capsys, doc)
    assert code == 0, out
    assert ("2026-03-30 v1: matches the ledger (288 readings); signed and checked: 144 readings of atelier-grid; "
            "unsigned: 144 readings of fablab-grid") in out
    # An export whose ledger predates the checks verifies, and says so.
    for e in doc["ledger"]:
        del e["checks"]
        e["digest"] = ledger.entry_digest(e["territory"], e["seq"], e["day"], e["version"], e["count"],
                                          bytes.fromhex(e["root"]), bytes.fromhex(e["prev"])).hex()
    doc["indicators"] = None
    code, out = verify(tmp_path, capsys, doc)
    assert code == 0, out
    assert "2026-03-30 v1: matches the ledger (288 readings); signatures: not recorded" in out
