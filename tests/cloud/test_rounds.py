"""Collection rounds: the pure plan (a hand-computed case, properties), its API (JSON, CSV,
scoped keys) and the avoidable-collection indicator on the simulated store."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from boucle.registry import CollectionSettings
from cloud.rounds import (
    BinForecast,
    BinPlace,
    fill_forecast,
    next_round,
    next_rounds,
    plan_round,
    round_at,
)
from tests.cloud.conftest import ADMIN, ECULLY, ZIM_FABLAB

PARIS = ZoneInfo("Europe/Paris")
DAY = 86400
R0 = 1_780_000_000
DEPOT = (45.0, 4.0)
KM_PER_DEG_LAT = 111.195  # haversine with the IUGG mean radius, per degree of latitude


def place(device: str, north_deg: float) -> BinPlace:
    return BinPlace(device, "s", "residual", (DEPOT[0] + north_deg, DEPOT[1]))


def test_a_hand_computed_plan():
    bins = [place("far", 0.02), place("near", 0.01), place("half", 0.005), place("mute", 0.001)]
    forecasts = {
        "far": BinForecast("far", R0 - DAY // 2, 80.0, 20.0),   # 90 at the round, 110 a day later
        "near": BinForecast("near", R0, 85.0, 10.0),            # 95 at the next round
        "half": BinForecast("half", R0, 50.0, 10.0),            # 60 at the next round: waits, due in 4 days
    }
    plan = plan_round(bins, forecasts, R0, R0 + DAY, 90.0, DEPOT)
    assert [p.device for p in plan.collect] == ["near", "far"]  # nearest the depot first
    near, far = plan.collect
    assert near.distance_km == round(0.01 * KM_PER_DEG_LAT, 3) and far.distance_km == round(0.02 * KM_PER_DEG_LAT, 3)
    assert (far.fill_pct, far.at_next_round_pct) == (90.0, 110.0)
    assert (near.fill_pct, near.at_next_round_pct) == (85.0, 95.0)
    [half] = plan.wait
    assert (half.device, half.at_next_round_pct, half.reaches_threshold) == ("half", 60.0, R0 + 4 * DAY)
    assert [p.device for p in plan.unknown] == ["mute"]


def test_fill_rate_from_recent_deposits_across_an_emptying():
    # 10 points a day for two days, emptied, then 10 a day for one more day
    samples = [(R0 + h * 3600, 10.0 + 10 * h / 24) for h in range(49)]
    samples += [(R0 + 49 * 3600 + h * 3600, 2.0 + 10 * h / 24) for h in range(25)]
    f = fill_forecast("b", samples)
    assert f is not None and f.fill_pct == 12.0 and f.ts == R0 + 73 * 3600
    assert abs(f.rate_pct_per_day - 30 / (73 / 24)) < 0.5  # 20 + 10 points deposited over 73 h
    assert fill_forecast("b", samples[:1]) is None


def test_next_round_skips_days_without_rounds():
    weekdays = CollectionSettings(round_days="Mo-Fr", round_time="06:00")
    friday_7am = datetime(2026, 11, 6, 7, 0, tzinfo=PARIS).timestamp()
    assert next_round(friday_7am, weekdays, PARIS) == round_at(date(2026, 11, 9), weekdays, PARIS)
    assert datetime.fromtimestamp(next_round(friday_7am - 3601, weekdays, PARIS), PARIS).day == 6  # 06:00 that day


@settings(max_examples=30, deadline=None)
@given(times=st.lists(st.integers(1774000000, 1774000000 + 400 * DAY), min_size=1, max_size=40),
       days=st.sampled_from(["Mo-Fr", "Tu,Th", "Su", "Sa-Mo"]), at=st.sampled_from(["06:00", "02:30", "23:45"]))
def test_next_rounds_are_next_round_of_each_time(times, days, at):
    """The table the indicators use (one round start a day) gives next_round's answer, across
    the DST changes (02:30 does not exist on the spring one), out of order too."""
    c = CollectionSettings(round_days=days, round_time=at)
    assert next_rounds(times, c, PARIS).tolist() == [next_round(t, c, PARIS) for t in times]


forecast = st.builds(BinForecast, st.just("b"), st.integers(R0 - 7 * DAY, R0),
                     st.floats(0, 120, allow_nan=False), st.floats(0, 200, allow_nan=False))


@settings(max_examples=300, deadline=None)
@given(f=forecast, gap_days=st.integers(1, 6), threshold=st.floats(10, 100, allow_nan=False))
def test_plan_properties(f, gap_days, threshold):
    plan = plan_round([place("b", 0.01)], {"b": f}, R0, R0 + gap_days * DAY, threshold, DEPOT)
    planned = [p.device for p in plan.collect]
    reaches = f.reaches(threshold)
    if reaches is not None and reaches < R0 + DAY:  # forecast to pass it before the next day
        assert planned == ["b"]
    if f.fill_at(R0 + gap_days * DAY) < threshold:  # never above the threshold until the round after
        assert planned == []
    assert len(plan.collect) + len(plan.wait) == 1


def test_rounds_api_json_csv_and_scope(client):
    admin = {"X-API-Key": ADMIN}
    plan = client.get("/v1/territories/ecully/rounds?day=2026-03-30", headers=admin)
    assert plan.status_code == 200, plan.text
    body = plan.json()
    assert (body["day"], body["round"], body["next_round"]) == ("2026-03-30", "2026-03-30T04:00:00Z",
                                                               "2026-03-31T04:00:00Z")
    assert body["depot"] == [45.779, 4.7702]
    bins = body["collect"] + body["wait"] + body["unknown"]
    assert bins and all(b["site"].startswith("ecully") for b in bins)
    # the simulated bins fill about 20% a day from empty: none is due at 90% by Tuesday
    assert body["collect"] == [] and len(body["wait"]) == len(bins)
    assert all(0 < b["fill_at_round_pct"] < 40 for b in body["wait"])
    residual = client.get("/v1/territories/ecully/rounds?day=2026-03-30&stream=residual", headers=admin).json()
    assert {b["stream"] for b in residual["wait"]} == {"residual"}
    csv = client.get("/v1/territories/ecully/rounds?day=2026-03-30&format=csv", headers=admin)
    lines = csv.text.strip().splitlines()
    assert lines[0].startswith("order,action,device") and len(lines) == 1 + len(bins)
    assert client.get("/v1/territories/ecully/rounds?stream=gravel", headers=admin).status_code == 422
    assert client.get("/v1/territories/ecully/rounds?day=2026-02-30", headers=admin).status_code == 422
    assert client.get("/v1/territories/zi-meyzieu/rounds", headers={"X-API-Key": ECULLY}).status_code == 404
    assert client.get("/v1/territories/ecully/rounds", headers={"X-API-Key": ZIM_FABLAB}).status_code == 404


def test_avoidable_share_of_the_plan_on_the_simulated_days(client):
    got = client.get("/v1/territories/ecully/indicators", headers={"X-API-Key": ADMIN},
                     params={"from": "2026-03-28T00:00:00Z", "to": "2026-03-30T00:00:00Z",
                             "ids": "waste.plan_avoidable_collections"}).json()["indicators"][0]
    # every bin is emptied each morning at about 20% and fills about 20% a day: with the next
    # weekday round at most three days away, none would have reached 90%: all avoidable
    assert got["breakdown"]["emptyings"] > 0
    assert got["value"] == 100.0 and got["breakdown"]["avoidable"] == got["breakdown"]["emptyings"]
    assert got["reference"]["direction"] == "lower" and "Nordsense" in got["reference"]["source"]
