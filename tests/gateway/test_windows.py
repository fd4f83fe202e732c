"""Event-time windows: recomputed from stored readings, so late data updates them and
the result does not depend on arrival order or on the store backend."""

import pytest

from boucle.protocol import Reading
from boucle.storage import StoredReading, open_store
from gateway.aggregate import day_windows, raw_windows
from gateway.service import recompute_windows

H = 1767225600  # 2026-01-01 00:00 UTC


def stored(ts_values):
    return [StoredReading(ts, 1, i, v) for i, (ts, v) in enumerate(ts_values)]


def test_energy_windows_attribute_each_delta_to_the_later_reading():
    rows = stored([(H - 60, {"energy_wh": 100, "power_w": 10.0}),   # baseline, before the span
                   (H, {"energy_wh": 110, "power_w": 20.0}),
                   (H + 30, {"energy_wh": 115, "power_w": 40.0}),
                   (H + 60, {"energy_wh": 5, "power_w": 30.0})])   # counter reset: counts 5 in full
    minutes = raw_windows("d", rows, H, H + 3600, "1m")
    assert [(w.start, w.energy_wh, w.readings, w.power_mean_w, w.power_max_w) for w in minutes] == [
        (H, 15.0, 2, 30.0, 40.0), (H + 60, 5.0, 1, 30.0, 30.0)]
    (hour,) = raw_windows("d", rows, H, H + 3600, "1h")
    assert hour.energy_wh == 20.0 and hour.readings == 3


def test_waste_windows_find_deposits_and_emptyings():
    weights = [0, 0, 2000, 2010, 5000, 4990, 100, 3000]
    rows = stored([(H + 60 * i, {"weight_g": w}) for i, w in enumerate(weights)])
    (hour,) = raw_windows("bin", rows, H, H + 3600, "1h")
    # 2 kg, 3 kg, then after the emptying (to 100 g, which counts as a deposit) 2.9 kg more.
    assert hour.deposited_g == pytest.approx(2000 + 3000 + 100 + 2900, abs=20)
    assert hour.emptyings == 1 and hour.collected_g == pytest.approx(5000, abs=20)


def test_day_windows_sum_hours():
    rows = stored([(H + 600 * i, {"energy_wh": 10 * i, "power_w": float(i)}) for i in range(20)])
    hours = raw_windows("d", rows, H, H + 86400, "1h")
    (day,) = day_windows(hours)
    assert day.energy_wh == 190 and day.readings == 20 and day.power_max_w == 19.0
    assert day.power_mean_w == pytest.approx(sum(range(20)) / 20)


@pytest.fixture(params=["sqlite", "influx"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    else:
        server = request.getfixturevalue("influxdb")
        s = open_store(f"influx+http://127.0.0.1:{server.port}/windows")
    yield s
    s.close()


def test_a_late_reading_updates_the_windows_it_touches(store):
    device = "ecully-fablab-grid"
    on_time = [Reading(device, 1, s, H + 60 * s, {"energy_wh": 1000 + 10 * s}) for s in range(120) if s != 59]
    store.write_readings(on_time, H + 7200.0)
    assert recompute_windows(store, device, H, H + 60 * 119, 36000)
    hours = store.windows([device], "1h", H, H + 7200)
    assert [(w.start, w.energy_wh, w.readings) for w in hours] == [(H, 580.0, 59), (H + 3600, 610.0, 60)]

    late = Reading(device, 1, 59, H + 60 * 59, {"energy_wh": 1590})  # seq 59, the end of hour 0
    store.write_readings([late], H + 9000.0)
    assert recompute_windows(store, device, late.ts, late.ts, 36000)
    hours = store.windows([device], "1h", H, H + 7200)
    # The late reading moves 10 Wh into hour 0 and changes the delta of the next reading.
    assert [(w.start, w.energy_wh, w.readings) for w in hours] == [(H, 590.0, 60), (H + 3600, 600.0, 60)]
    minutes = store.windows([device], "1m", H + 58 * 60, H + 61 * 60)
    assert [w.energy_wh for w in minutes] == [10.0, 10.0, 10.0]
    (day,) = store.windows([device], "1d", H, H + 86400)
    assert day.energy_wh == 1190.0 and day.readings == 120
    quarter = store.windows([device], "15m", H, H + 7200)
    assert sum(w.energy_wh for w in quarter) == 1190.0 and len(quarter) == 8


def test_month_packs_wait_for_the_end_of_the_day(tmp_path):
    from gateway.spool import Spool

    spool = Spool(tmp_path / "spool.db", 1000)
    today = H + 10 * 86400
    spool.clean([("today-only", today + 60, today + 3600), ("late", H + 60, today + 60)])
    assert spool.packs_due(before=today) == [("late", H + 60, today + 60)]
    assert {d for d, _, _ in spool.packs_due(before=today + 86400)} == {"today-only", "late"}
    spool.clean([("late", H + 30, H + 30)])  # more late data for that device meanwhile
    spool.clean_packs([("late", H + 60, today + 60)])  # the older span's refresh: stays due
    assert spool.packs_due(before=today) == [("late", H + 30, today + 60)]
