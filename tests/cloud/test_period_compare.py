"""Indicator sets against another period: ?compare=previous|year."""

from __future__ import annotations

import csv
import io

import pytest

from cloud.indicators import CATALOGUE, Period, load_references
from cloud.period_compare import change, other_period
from cloud.timefmt import iso
from tests.cloud.conftest import ADMIN

H = {"X-API-Key": ADMIN}
DAY = 86400
D28 = 1774656000  # 2026-03-28 00:00 UTC, the first day of tests/cloud/conftest.py's readings


def test_other_periods():
    p = Period(D28 + DAY, D28 + 2 * DAY)
    assert other_period(p, "previous") == Period(D28, D28 + DAY)
    year = other_period(p, "year")
    assert (year.start, year.end) == (D28 + DAY - 365 * DAY, D28 + 2 * DAY - 365 * DAY)
    leap = Period(1709164800, 1709251200)  # 2024-02-29 -> 03-01
    assert other_period(leap, "year") == Period(1677542400, 1677628800)  # 2023-02-28 -> 03-01


@pytest.mark.parametrize(("value", "other", "direction", "expected"), [
    (90.0, 100.0, "lower", {"delta": -10.0, "delta_pct": -10.0, "improved": True}),
    (90.0, 100.0, "higher", {"delta": -10.0, "delta_pct": -10.0, "improved": False}),
    (110.0, -100.0, "higher", {"delta": 210.0, "delta_pct": 210.0, "improved": True}),
    (5.0, 0.0, "lower", {"delta": 5.0, "delta_pct": None, "improved": False}),
    (5.0, 5.0, "lower", {"delta": 0.0, "delta_pct": 0.0, "improved": None}),
    (5.0, None, "lower", {"delta": None, "delta_pct": None, "improved": None}),
    (5.0, 4.0, None, {"delta": 1.0, "delta_pct": 25.0, "improved": None}),
])
def test_change(value, other, direction, expected):
    assert change(value, other, direction) == {"value": other, **expected}


def test_every_indicator_says_which_way_is_better():
    refs = load_references()
    assert {i: refs.direction(i) for i in CATALOGUE if refs.direction(i) not in ("lower", "higher")} == {}
    assert refs.benchmark("energy.consumed") is None  # a direction alone is no reference
    assert refs.benchmark("waste.per_capita")["target"] == 480


@pytest.mark.parametrize(("start", "end"), [
    (D28 + DAY, D28 + 2 * DAY), (D28 + DAY + 12 * 3600, D28 + 2 * DAY), (D28 + 30 * 3600, D28 + 42 * 3600)])
@pytest.mark.parametrize("route", ["/v1/territories/ecully/indicators", "/v1/sites/ecully-fablab/indicators"])
def test_compare_previous_equals_the_two_periods_asked_separately(client, route, start, end):
    refs = load_references()
    got = client.get(route, params={"from": iso(start), "to": iso(end), "compare": "previous"}, headers=H)
    assert got.status_code == 200, got.text
    body = got.json()
    before = start - (end - start)
    assert body["compared_with"] == {"from": iso(before), "to": iso(start)}
    now = {v["id"]: v for v in client.get(route, params={"from": iso(start), "to": iso(end)}, headers=H)
           .json()["indicators"]}
    then = {v["id"]: v for v in client.get(route, params={"from": iso(before), "to": iso(start)}, headers=H)
            .json()["indicators"]}
    for v in body["indicators"]:
        c = v["change"]
        assert v["value"] == now[v["id"]]["value"]
        assert c["value"] == then[v["id"]]["value"] and c["coverage"] == then[v["id"]]["coverage"]
        assert c["direction"] == refs.direction(v["id"])
        if v["value"] is None or c["value"] is None:
            assert c["delta"] is None
            continue
        assert c["delta"] == pytest.approx(v["value"] - c["value"])
        if c["value"]:
            assert c["delta_pct"] == pytest.approx(c["delta"] / abs(c["value"]) * 100)
        if c["delta"]:
            assert c["improved"] == ((c["delta"] < 0) == (c["direction"] == "lower"))

    assert any(v["change"]["delta"] for v in body["indicators"])  # the two periods differ somewhere


def test_compare_year_and_refusals(client):
    params = {"from": iso(D28 + DAY), "to": iso(D28 + 2 * DAY)}
    body = client.get("/v1/territories/ecully/indicators", params={**params, "compare": "year"}, headers=H).json()
    assert body["compared_with"] == {"from": iso(D28 + DAY - 365 * DAY), "to": iso(D28 + 2 * DAY - 365 * DAY)}
    energy = next(v for v in body["indicators"] if v["id"] == "energy.consumed")
    assert energy["value"] > 0 and energy["change"]["coverage"] == 0  # no readings a year before
    plain = client.get("/v1/territories/ecully/indicators", params=params, headers=H).json()
    assert plain.get("compared_with") is None and all(v.get("change") is None for v in plain["indicators"])
    bad = client.get("/v1/territories/ecully/indicators", params={**params, "compare": "last"}, headers=H)
    assert bad.status_code in (400, 422) and "compare" in bad.text


def test_compare_csv_carries_the_change_columns_equal_to_the_json(client):
    params = {"from": iso(D28 + DAY), "to": iso(D28 + 2 * DAY), "compare": "previous"}
    route = "/v1/territories/ecully/indicators"
    body = client.get(route, params=params, headers=H).json()
    got = client.get(route, params={**params, "format": "csv"}, headers=H)
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(got.text))}
    assert list(rows) == [v["id"] for v in body["indicators"]]

    def number(text):
        return None if text == "" else float(text)

    for v in body["indicators"]:
        row, c = rows[v["id"]], v["change"]
        assert (row["compare"], row["compared_from"], row["compared_to"]) == (
            "previous", body["compared_with"]["from"], body["compared_with"]["to"])
        assert number(row["value"]) == v["value"]
        assert number(row["compared_value"]) == c["value"] and number(row["compared_coverage"]) == c["coverage"]
        assert number(row["delta"]) == c["delta"] and number(row["delta_pct"]) == c["delta_pct"]
        assert row["direction"] == (c["direction"] or "")
        assert row["improved"] == {True: "true", False: "false", None: ""}[c["improved"]]
    assert {r["improved"] for r in rows.values()} >= {"true", "false"}  # both ways, as the JSON
    plain = client.get(route, params={"from": params["from"], "to": params["to"], "format": "csv"}, headers=H)
    assert "delta" not in plain.text.splitlines()[0].split(",")  # no comparison, no change columns
