"""The alert rules on what a real SQLite store holds (cloud.alerts.observe): a night base
load above its usual level, a water leak, a bin due before its round, rules turned off."""

from __future__ import annotations

from pathlib import Path

import pytest

from boucle.protocol import Reading
from boucle.registry import load_registry
from boucle.storage.sqlite import SQLiteStore
from cloud.alerts.observe import evaluate_territory
from cloud.indicators import load_references

DAY0 = 1_790_467_200  # 2026-09-27 00:00 UTC, a Sunday: NOW is Wednesday 2026-10-14
DAYS = 17
STEP = 900
NOW = DAY0 + DAYS * 86400 + 60
REGISTRY = """
[waste_streams]
residual = "incineration_energy_recovery"

[[territories]]
id = "bourg"
name = "Bourg"
kind = "commune"
population = 1000
centroid = [45.77, 4.78]
timezone = "UTC"
collection = {{ round_days = "Mo", threshold_pct = 80 }}
{alerts}

[[sites]]
id = "mairie"
territory = "bourg"
name = "Mairie"
kind = "office"
location = [45.772, 4.782]

[[devices]]
id = "mairie-grid"
site = "mairie"
kind = "energy"
channel = "grid_import"
interval_s = 900

[[devices]]
id = "mairie-water"
site = "mairie"
kind = "water"
interval_s = 900

[[devices]]
id = "mairie-bin"
site = "mairie"
kind = "waste"
stream = "residual"
capacity_kg = 100
interval_s = 900
"""


def readings() -> list[Reading]:
    out, wh, litres = [], 0.0, 0
    for seq, ts in enumerate(range(DAY0, NOW, STEP)):
        day, hour = divmod(ts - DAY0, 86400)
        night = hour < 6 * 3600
        watts = 700.0 if night and day == DAYS - 1 else 200.0  # last night: 700 W instead of 200 W
        leaking = night and day >= DAYS - 4  # 10 L/h every night of the last four
        out.append(Reading("mairie-grid", 1, seq, ts, {"energy_wh": round(wh), "power_w": watts}))
        out.append(Reading("mairie-water", 1, seq, ts, {"water_l": litres}))
        out.append(Reading("mairie-bin", 1, seq, ts, {"weight_g": 4000 * (ts - DAY0) // 86400}))  # 4 kg a day
        wh += watts * STEP / 3600
        litres += (10 * STEP // 3600) if leaking else 0
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = SQLiteStore(tmp_path_factory.mktemp("observe") / "boucle.db")
    s.write_readings(readings(), received=NOW)
    yield s
    s.close()


def evaluate(store, tmp_path: Path, alerts: str = ""):
    path = tmp_path / "registry.toml"
    path.write_text(REGISTRY.format(alerts=alerts))
    registry = load_registry(path)
    return evaluate_territory(store, registry, registry.territories[0], NOW, load_references())


def test_night_base_load_leak_and_bin_found_in_the_store(store, tmp_path):
    findings, evaluated = evaluate(store, tmp_path)
    by_rule = {f.rule: f for f in findings}
    assert set(by_rule) == {"base_load_high", "water_leak", "bin_overflow"}, [f.message for f in findings]
    load = by_rule["base_load_high"]
    assert (load.subject, load.detail["base_load_w"], load.detail["usual_w"]) == ("mairie", 700.0, 200.0)
    assert by_rule["water_leak"].detail["nights_in_a_row"] == 4
    # the bin: 68 kg of 100 and 4 kg a day: 89% by Monday's round, past the 80% threshold
    assert by_rule["bin_overflow"].subject == "mairie-bin"
    assert evaluated == {("bourg", r) for r in ("bin_overflow", "device_silent", "data_gap", "base_load_high",
                                                 "water_leak")}


def test_rules_turned_off_and_tuned_per_territory(store, tmp_path):
    findings, evaluated = evaluate(store, tmp_path, 'alerts = { off = ["water_leak"], base_load_ratio = 4.0 }')
    assert {f.rule for f in findings} == {"bin_overflow"}
    assert ("bourg", "water_leak") not in evaluated and ("bourg", "base_load_high") in evaluated
