"""Per-step series, detail functions, references overrides and standings."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boucle.storage.sqlite import SQLiteStore
from cloud.indicators import (
    CATALOGUE,
    Period,
    ReferencesError,
    Scope,
    compute_indicators,
    indicator_series,
    load_references,
    pooling_detail,
    symbiosis_detail,
)
from cloud.indicators.references import standing
from tests.indicators.builders import counter, registry, utc, write

SITES = """
[[sites]]
id = "shop"
territory = "town"
name = "Shop"
kind = "sme_workshop"
location = [45.77, 4.77]

[[sites]]
id = "neighbour"
territory = "town"
name = "Neighbour"
kind = "office"
location = [45.771, 4.771]

[[devices]]
id = "shop-grid"
site = "shop"
kind = "energy"
channel = "grid_import"
rated_power_w = 20000

[[devices]]
id = "shop-pv"
site = "shop"
kind = "energy"
channel = "pv_production"
rated_power_w = 20000

[[devices]]
id = "neighbour-grid"
site = "neighbour"
kind = "energy"
channel = "grid_import"
rated_power_w = 20000

[[devices]]
id = "shop-bin"
site = "shop"
kind = "waste"
stream = "residual"
capacity_kg = 100
profile = "waste-scale"
"""

T0 = utc("2026-06-01T00:00")
SHOP = Scope("site", ("shop",))


@pytest.fixture
def reg():
    return registry(SITES)


def test_catalogue_has_the_28_indicators():
    assert len(CATALOGUE) == 29
    assert {i.split(".")[0] for i in CATALOGUE} == {"energy", "waste", "water", "circular", "data"}


def test_every_indicator_answers_on_every_scope_kind(store, reg):
    counter(store, "shop-grid", T0 - 60, 6000, 200)
    write(store, "shop-bin", [(T0 + 600 * i, {"weight_g": 1000 * i}) for i in range(10)])
    for scope in (SHOP, Scope("territory", ("town",)), Scope("territories", ("town", "zone"))):
        values = compute_indicators(store, reg, scope, Period(T0, T0 + 7200))
        assert [v.id for v in values] == list(CATALOGUE)
        for v in values:
            assert 0.0 <= v.coverage <= 1.0
            assert v.formula and v.unit
            assert v.standing in (None, "better", "between", "worse")


def test_series_steps_sum_to_the_period_total(store, reg):
    counter(store, "shop-grid", T0 - 60, 6000, 3 * 60 + 2)  # 6 kW for three hours
    period = Period(T0, T0 + 3 * 3600)
    steps = indicator_series(store, reg, SHOP, "energy.consumed", period, 3600)
    assert [s.period for s in steps] == [Period(T0 + h * 3600, T0 + (h + 1) * 3600) for h in range(3)]
    assert [s.value for s in steps] == [pytest.approx(6.0)] * 3
    whole = compute_indicators(store, reg, SHOP, period, ids=["energy.consumed"])[0]
    assert sum(s.value for s in steps) == pytest.approx(whole.value)
    assert all(s.coverage == pytest.approx(1.0) for s in steps)


def test_series_last_step_may_be_shorter_and_gaps_show_in_coverage(store, reg):
    counter(store, "shop-grid", T0 - 60, 6000, 31)  # data for the first half hour only
    steps = indicator_series(store, reg, SHOP, "energy.consumed", Period(T0, T0 + 5400), 3600)
    assert [s.period.seconds for s in steps] == [3600, 1800]
    assert steps[0].coverage == pytest.approx(0.5)
    assert steps[1].value is None and steps[1].coverage == 0.0


def test_series_rejects_tiny_steps(store, reg):
    with pytest.raises(ValueError, match="step"):
        indicator_series(store, reg, SHOP, "energy.consumed", Period(T0, T0 + 3600), 1)


def test_pooling_and_symbiosis_details(store, reg):
    counter(store, "shop-pv", T0 - 60, 12000, 62)
    counter(store, "shop-grid", T0 - 60, 0, 62)
    counter(store, "neighbour-grid", T0 - 60, 6000, 62)
    detail = pooling_detail(store, reg, Scope("territory", ("town",)), Period(T0, T0 + 3600))
    assert detail["pairs"][0]["from"] == "shop" and detail["pairs"][0]["to"] == "neighbour"
    assert detail["shared_kwh"] == pytest.approx(6.0)
    assert detail["gain_pp"] == pytest.approx(100.0)
    assert {s["site"] for s in detail["sites"]} == {"shop", "neighbour"}
    assert symbiosis_detail(store, reg, Scope("territory", ("town",)), Period(T0, T0 + 3600)) == []


def test_references_override_file(tmp_path, monkeypatch):
    override = tmp_path / "refs.toml"
    override.write_text('[grid_factor]\nvalue = 0.1\nsource = "test grid"\nyear = 2030\n'
                        '[indicators."waste.per_capita"]\ntarget = 10\n')
    refs = load_references(override)
    assert refs.grid_factor == {"value": 0.1, "unit": "kgCO2e/kWh", "source": "test grid", "year": 2030}
    # untouched keys keep their defaults
    assert refs.benchmark("waste.per_capita")["limit"] == 573
    assert refs.benchmark("waste.per_capita")["target"] == 10
    monkeypatch.setenv("BOUCLE_REFERENCES", str(override))
    assert load_references().grid_factor["value"] == 0.1


def test_references_errors_say_what_to_fix(tmp_path):
    with pytest.raises(ReferencesError, match="not found"):
        load_references(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[grid_factor\n")
    with pytest.raises(ReferencesError, match="not valid TOML"):
        load_references(bad)
    with pytest.raises(ReferencesError, match="route_factors"):
        load_references().route_factor("teleportation")


def test_grid_factor_override_changes_energy_ghg(store, reg, tmp_path):
    counter(store, "shop-grid", T0 - 60, 6000, 62)
    override = tmp_path / "refs.toml"
    override.write_text('[grid_factor]\nvalue = 0.5\n')
    v = compute_indicators(store, reg, SHOP, Period(T0, T0 + 3600), ids=["energy.ghg"],
                           references=load_references(override))[0]
    assert v.value == pytest.approx(3.0)


@pytest.mark.parametrize("value, expected", [(100, "better"), (480, "better"), (500, "between"),
                                             (573, "between"), (600, "worse"), (None, None)])
def test_standing_lower_is_better(value, expected):
    assert standing(value, {"direction": "lower", "limit": 573, "target": 480}) == expected


@pytest.mark.parametrize("value, expected", [(60, "better"), (55, "better"), (50, "between"),
                                             (40, "worse")])
def test_standing_higher_is_better(value, expected):
    assert standing(value, {"direction": "higher", "limit": 48, "target": 55}) == expected


def test_standing_without_limit_or_target():
    assert standing(5, {"direction": "lower", "target": 10}) == "better"
    assert standing(15, {"direction": "lower", "target": 10}) == "worse"
    assert standing(5, {"direction": "higher", "typical": 50}) is None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(1, 600), st.integers(0, 150)), min_size=2, max_size=40),
       st.sampled_from([600, 1800, 3600]))
def test_series_steps_always_sum_to_the_whole(tmp_path_factory, rows, step):
    # any reading times (gaps, bursts) and counter increments, with resets now and then
    store = SQLiteStore(tmp_path_factory.mktemp("p") / "x.db")
    reg = registry(SITES)
    ts, wh, out = T0 - 300, 0, []
    for i, (gap, inc) in enumerate(rows):
        ts += gap
        wh = inc if i % 7 == 6 else wh + inc  # a reset every 7th reading
        out.append((ts, {"energy_wh": wh}))
    write(store, "shop-grid", out)
    period = Period(T0, T0 + 3 * 3600)
    steps = indicator_series(store, reg, SHOP, "energy.consumed", period, step)
    whole = compute_indicators(store, reg, SHOP, period, ids=["energy.consumed"])[0]
    total = sum(s.value or 0.0 for s in steps)
    # the steps cut the same integer mWh: equal but for the float sum of their kWh
    assert total == pytest.approx(whole.value or 0.0, rel=1e-12, abs=1e-15)
    store.close()
