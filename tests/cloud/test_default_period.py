"""The default period (the last 30 days, to the next quarter-hour) is read from the gateway's
rollups alone: no raw reading is read to answer it, and its values are the raw path's."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from boucle.protocol import Reading
from boucle.registry import ApiKey, RegistryFile, hash_key
from boucle.settings import ApiSettings, load_settings
from boucle.storage.sqlite import SQLiteStore
from cloud.app import create_app
from cloud.indicators import Period, Scope, compute_indicators, load_references
from cloud.params import parse_instant
from tests.indicators.builders import BASE_TOML, registry
from tests.indicators.fleets import fill_as_the_gateway_does
from tests.store_calls import Counting

FLEET = """
[[sites]]
id = "lab"
territory = "town"
name = "Lab"
kind = "fablab"
location = [45.77, 4.77]
opening_hours = "Mo-Fr 08:00-18:00"

[[devices]]
id = "lab-grid"
site = "lab"
kind = "energy"
channel = "grid_import"
rated_power_w = 9000
interval_s = 600
profile = "energy-pzem"

[[devices]]
id = "lab-bin"
site = "lab"
kind = "waste"
stream = "residual"
capacity_kg = 120
interval_s = 600
"""
KEY = "bk_default-period-test-key"


def test_the_default_period_is_answered_from_rollups_alone(tmp_path):
    reg = registry(FLEET)
    now = int(time.time())
    readings = []
    for i, t in enumerate(range(now - 32 * 86400 - now % 600, now, 600)):  # every 10 minutes, up to now
        readings.append(Reading("lab-grid", 1, i, t, {"energy_wh": 50 * i + (i * 7) % 11}))
        readings.append(Reading("lab-bin", 1, i, t, {"weight_g": 300 * (i % 40)}))
    store = SQLiteStore(tmp_path / "x.db")
    fill_as_the_gateway_does(store, reg, readings, 4, seed=3)
    (tmp_path / "registry.toml").write_text(BASE_TOML + FLEET)
    counting = Counting(store)
    settings = load_settings(ApiSettings, {}, store_url=f"sqlite:///{tmp_path / 'x.db'}", rate_limit_per_s=0)
    app = create_app(settings, registry_file=RegistryFile(tmp_path / "registry.toml"), store=counting,
                     extra_keys=[ApiKey(id="town", sha256=hash_key(KEY), territories=("town",))])
    with TestClient(app) as client:
        body = client.get("/v1/territories/town/indicators", headers={"X-API-Key": KEY}).json()
    period = Period(parse_instant("from", body["period"]["from"]), parse_instant("to", body["period"]["to"]))
    assert period.start % 900 == 0 and period.end % 900 == 0 and period.end - period.start == 30 * 86400
    assert counting.calls["month_rollups"] and counting.calls["day_rollups"]
    assert counting.calls["readings"] == 0  # not one raw reading read
    raw = compute_indicators(store, reg, Scope("territory", ("town",)), period, references=load_references(), raw=True)
    got = {v["id"]: v["value"] for v in body["indicators"]}
    assert got == {v.id: v.value for v in raw}
    assert got["energy.consumed"] > 0 and got["waste.generated"] > 0
    store.close()
