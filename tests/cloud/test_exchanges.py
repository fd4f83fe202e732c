"""Exchanges from symbiosis matches: proposed through the API, recorded in the alert book
(a real SQLite file beside the store), listed per key, moved through their statuses."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.cloud.conftest import ADMIN, ECULLY, PERIOD, ZIM_FABLAB, make_app

WOOD = {"from_site": "ecully-joinery", "to_site": "ecully-fablab", "material": "wood",
        "pickup_from": "2026-04-02T08:00:00Z", "pickup_until": "2026-04-02T12:00:00Z", "kind": "gift"}


@pytest.fixture
def exchanges_client(simulated_db, tmp_path):
    with TestClient(make_app(simulated_db, alerts_db=str(tmp_path / "book.db"), alerts_interval_s=0)) as c:
        yield c


def test_propose_list_and_move_an_exchange(exchanges_client):
    c, officer = exchanges_client, {"X-API-Key": ECULLY}
    made = c.post("/v1/exchanges", params=PERIOD, json=WOOD, headers=officer)
    assert made.status_code == 201, made.text
    x = made.json()
    # the match: joinery's wood within the Fablab's 5 km, the need's 80 kg a month
    assert (x["status"], x["kg"], x["distance_km"], x["territory"]) == ("proposed", 80.0, 0.693, "ecully")
    assert (x["pickup_from"], x["pickup_until"], x["created_by"]) == (WOOD["pickup_from"], WOOD["pickup_until"],
                                                                      "ecully-officer")
    listed = c.get("/v1/exchanges", headers=officer).json()["exchanges"]
    assert [e["id"] for e in listed] == [x["id"]]
    assert c.get("/v1/exchanges", headers={"X-API-Key": ZIM_FABLAB}).json()["exchanges"] == []
    assert c.get(f"/v1/exchanges/{x['id']}", headers={"X-API-Key": ZIM_FABLAB}).status_code == 404

    accepted = c.post(f"/v1/exchanges/{x['id']}/status", json={"status": "accepted"}, headers=officer).json()
    assert accepted["status"] == "accepted"
    done = c.post(f"/v1/exchanges/{x['id']}/status", json={"status": "done"}, headers={"X-API-Key": ADMIN}).json()
    assert [(h["status"], h["by"]) for h in done["history"]] == [
        ("proposed", "ecully-officer"), ("accepted", "ecully-officer"), ("done", "admin")]
    late = c.post(f"/v1/exchanges/{x['id']}/status", json={"status": "cancelled"}, headers=officer)
    assert late.status_code == 409 and "final" in late.json()["detail"]
    assert c.get("/v1/exchanges?status=done", headers=officer).json()["exchanges"][0]["id"] == x["id"]


@pytest.mark.parametrize("change, status, word", [
    ({"material": "glass"}, 422, "not a symbiosis match"),
    ({"from_site": "zim-injection"}, 404, "zim-injection"),  # another territory's site: not this key's
    ({"to_site": "zim-fablab"}, 422, "not a symbiosis match"),  # 30 km away, beyond the need's 10 km
    ({"pickup_until": "2026-04-01T00:00:00Z"}, 422, "pick-up window"),
    ({"kg": -1}, 422, "kg"),
    ({"note": "x" * 501}, 422, "note"),
])
def test_bad_proposals_are_refused_with_the_reason(exchanges_client, change, status, word):
    got = exchanges_client.post("/v1/exchanges", params=PERIOD, json={**WOOD, **change},
                                headers={"X-API-Key": ECULLY})
    assert got.status_code == status and word in got.text


def test_evaluating_alerts_now_is_scoped_to_the_key(exchanges_client):
    c = exchanges_client
    # the simulated readings end on 2026-03-29: today every Écully sensor is silent
    changed = c.post("/v1/alerts/evaluate?territory=ecully", headers={"X-API-Key": ECULLY}).json()["changed"]
    assert changed and {(a["rule"], a["territory"], a["status"]) for a in changed} == {
        ("device_silent", "ecully", "open")}
    assert c.post("/v1/alerts/evaluate?territory=zi-meyzieu", headers={"X-API-Key": ECULLY}).status_code == 404
    assert c.post("/v1/alerts/evaluate", headers={"X-API-Key": ZIM_FABLAB}).status_code == 403
    assert c.post("/v1/alerts/evaluate?territory=ecully", headers={"X-API-Key": ECULLY}).json()["changed"] == []
    mine = c.get("/v1/alerts", headers={"X-API-Key": ZIM_FABLAB}).json()["alerts"]
    assert mine == []  # the Meyzieu Fablab's key sees no Écully alert
