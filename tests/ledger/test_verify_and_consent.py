"""Indicators that cite their data, exports checked by `boucle verify`, reading proofs, and
sharing by consent: through the API (its test client) on real SQLite and InfluxDB."""

from __future__ import annotations

import copy
import json

import pytest
from fastapi.testclient import TestClient

from boucle import ledger
from boucle.cli import main
from boucle.registry import ApiKey, RegistryFile, hash_key
from boucle.settings import ApiSettings, load_settings
from cloud.app import create_app
from gateway.ledger_stage import ledger_round
from tests.ledger.conftest import DAY0, tamper

ADMIN, OFFICER, ATELIER = "bk_admin-ledger", "bk_vallee-officer", "bk_atelier-owner"
KEYS = [ApiKey(id="admin", sha256=hash_key(ADMIN), admin=True),
        ApiKey(id="vallee-officer", sha256=hash_key(OFFICER), territories=("vallee",)),
        ApiKey(id="atelier-owner", sha256=hash_key(ATELIER), sites=("atelier",))]
PERIOD = {"from": "2026-03-28", "to": "2026-03-30"}


@pytest.fixture
def api(store, registry, registry_path):
    ledger_round(store, registry, DAY0 + 2 * 86400 + 7 * 3600, 6 * 3600, 7)
    settings = load_settings(ApiSettings, {}, registry=str(registry_path), rate_limit_per_s=1000.0,
                             rate_limit_burst=10_000)
    with TestClient(create_app(settings, registry_file=RegistryFile(registry_path), store=store,
                               extra_keys=KEYS)) as client:
        def get(path, key=ADMIN, **params):
            return client.get(path, params=params, headers={"X-API-Key": key})

        client.get_as = get
        yield client


def verify(tmp_path, capsys, doc, name="export.json") -> tuple[int, str]:
    path = tmp_path / name
    path.write_text(json.dumps(doc) if isinstance(doc, dict) else doc, "utf-8")
    capsys.readouterr()
    code = main(["verify", str(path), *(["--ledger", str(tmp_path / "ledger.json")] if name.endswith(".csv") else [])])
    printed = capsys.readouterr()
    return code, printed.out + printed.err


def test_indicators_cite_their_days_and_verify_finds_tampering(api, store, tmp_path, capsys):
    chain = store.ledger("vallee")
    got = api.get_as("/v1/territories/vallee/indicators", ids="energy.consumed", **PERIOD).json()
    assert got["indicators"][0]["sources"] == [
        {"territory": "vallee", "day": d, "version": 1, "digest": e.digest.hex(), "site_roots": None}
        for d, e in zip(("2026-03-28", "2026-03-29"), chain)]
    site = api.get_as("/v1/sites/fablab/indicators", ids="energy.consumed", **PERIOD).json()
    assert [c["site_roots"] for c in site["indicators"][0]["sources"]] == [
        {"fablab": next(s.root.hex() for s in e.sites if s.site == "fablab")} for e in chain]

    doc = api.get_as("/v1/territories/vallee/export", **PERIOD).json()
    assert len(doc["readings"]) == 864 and doc["shared"] == {"atelier": "readings", "fablab": "readings"}
    code, out = verify(tmp_path, capsys, doc)
    assert code == 0, out
    assert "2026-03-28 v1: matches the ledger (432 readings)" in out and "all match" in out

    tampered = copy.deepcopy(doc)  # a reading changed in the export
    row = next(r for r in tampered["readings"] if r["device"] == "fablab-grid" and r["ts"] == DAY0 + 86400 + 600)
    row["power_w"] += 1
    row["energy_wh"] += 50
    code, out = verify(tmp_path, capsys, tampered)
    assert code == 1
    assert "2026-03-29 v1: DOES NOT MATCH the ledger: site fablab: 144 readings exported, 144 sealed, same count" in out
    assert "indicator energy.peak_demand: DOES NOT MATCH: exported 2.004, recomputed 2.096" in out

    dropped = copy.deepcopy(doc)
    dropped["readings"] = [r for r in dropped["readings"] if not (r["device"] == "atelier-pv" and r["ts"] == DAY0)]
    code, out = verify(tmp_path, capsys, dropped)
    assert code == 1 and "2026-03-28 v1: DOES NOT MATCH the ledger: site atelier: 287 readings exported, 288 sealed" in out

    replaced = copy.deepcopy(doc)  # day 1 replaced, and its entry resealed over the one before
    for r in replaced["readings"]:
        if r["ts"] < DAY0 + 86400:
            r["power_w"] = 800.0
    from boucle.storage.ledger_days import DayReadings
    from cloud.verify import _rows

    roots = DayReadings.of("vallee", DAY0, _rows(replaced["readings"])[DAY0]).roots()
    replaced["ledger"][0] = ledger.entry_doc(ledger.seal("vallee", DAY0, roots, [], chain[0].sealed_at))
    code, out = verify(tmp_path, capsys, replaced)
    assert code == 1 and "ledger: entry 1 (day 1774742400 v1): does not follow the entry before it" in out

    # the store itself tampered with: the next export no longer matches its ledger
    tamper(store, "atelier-grid", DAY0 + 3600, 2.5)
    code, out = verify(tmp_path, capsys, api.get_as("/v1/territories/vallee/export", **PERIOD).json())
    assert code == 1 and "2026-03-28 v1: DOES NOT MATCH the ledger: site atelier" in out

    broken = copy.deepcopy(doc)
    del broken["readings"][0]["seq"]
    code, out = verify(tmp_path, capsys, broken)
    assert code == 2 and "not a complete export (KeyError: 'seq')" in out

    # CSV readings with the ledger apart
    (tmp_path / "ledger.json").write_text(api.get_as("/v1/territories/vallee/ledger").text, "utf-8")
    csv_text = api.get_as("/v1/territories/vallee/export", format="csv", **PERIOD).text
    code, out = verify(tmp_path, capsys, csv_text, "readings.csv")
    assert code == 1 and "2026-03-29 v1: matches the ledger (432 readings)" in out and "2026-03-28 v1: DOES NOT" in out


def test_a_reading_is_proven_and_consent_limits_a_territory_key(api, store, tmp_path, capsys):
    proof = api.get_as("/v1/territories/vallee/ledger/2026-03-28/proof", device="fablab-grid", ts=DAY0 + 600).json()
    root = bytes.fromhex(api.get_as("/v1/territories/vallee/ledger").json()["entries"][0]["root"])
    assert proof["valid"] and ledger.verify_proof(ledger.proof_of(proof["proof"]), root)

    # the site's owner exports its site: checked against the territory's day by the other sites' roots
    doc = api.get_as("/v1/sites/atelier/export", ATELIER, **PERIOD).json()
    assert doc["shared"] == {"atelier": "readings"} and len(doc["readings"]) == 576
    code, out = verify(tmp_path, capsys, doc)
    assert code == 0, out
    assert "2026-03-29 v1: matches the ledger (288 readings; fablab: readings not shared as stored" in out
    assert "values recomputed, all match" in out

    # by default a territory key sees indicators, no readings
    assert api.get_as("/v1/sites/atelier/indicators", OFFICER, ids="energy.consumed", **PERIOD).status_code == 200
    doc = api.get_as("/v1/territories/vallee/export", OFFICER, **PERIOD).json()
    assert doc["readings"] == [] and doc["shared"] == {"atelier": "indicators only", "fablab": "indicators only"}
    assert api.get_as("/v1/territories/vallee/ledger/2026-03-28/proof", OFFICER, device="atelier-pv",
                      ts=DAY0 + 600).status_code == 404

    # only the site's own key decides
    put = api.put("/v1/sites/atelier/consent", json={"shares": "readings", "resolution_s": 3600},
                  headers={"X-API-Key": OFFICER})
    assert put.status_code == 403
    put = api.put("/v1/sites/atelier/consent", json={"shares": "readings", "resolution_s": 3600},
                  headers={"X-API-Key": ATELIER})
    assert put.status_code == 200 and put.json()["author"] == "atelier-owner"
    doc = api.get_as("/v1/territories/vallee/export", OFFICER, **PERIOD).json()
    assert doc["shared"] == {"atelier": "readings every 3600 s", "fablab": "indicators only"}
    assert len(doc["readings"]) == 2 * 2 * 24 and {r["site"] for r in doc["readings"]} == {"atelier"}
    code, out = verify(tmp_path, capsys, doc)  # sampled readings cannot be checked: the sites' roots can
    assert code == 0, out
    assert "2026-03-28 v1: matches the ledger (0 readings; atelier, fablab: readings not shared as stored, checked " \
           "by their roots only)" in out and "indicators: not recomputed: sites atelier, fablab do not share their readings" in out
    assert api.get_as("/v1/territories/vallee/ledger/2026-03-28/proof", OFFICER, device="atelier-pv",
                      ts=DAY0 + 600).status_code == 404  # not as stored: nothing to prove

    api.put("/v1/sites/atelier/consent", json={"shares": "readings"}, headers={"X-API-Key": ATELIER})
    assert api.get_as("/v1/territories/vallee/ledger/2026-03-28/proof", OFFICER, device="atelier-pv",
                      ts=DAY0 + 600).json()["valid"]
    history = api.get_as("/v1/sites/atelier/consent", OFFICER).json()["history"]
    assert [(h["author"], h["shares"], h["resolution_s"]) for h in history] == [
        ("atelier-owner", "readings", 3600), ("atelier-owner", "readings", 0)]
    assert all(h["at"] for h in history)
    assert api.get_as("/v1/sites/fablab/consent", ATELIER).status_code == 404  # another site's key sees nothing
