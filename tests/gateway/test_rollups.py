"""Rollups (boucle.rollup): hand-computed days, and the gateway's aggregate stage, which
recomputes them from stored readings so that late data updates them and the result does
not depend on arrival order or on the store backend (real SQLite and InfluxDB)."""

import numpy as np
import pytest

from boucle import rollup
from boucle.protocol import Reading
from boucle.registry import Device
from boucle.rollup import DAY, FILL, REJECTED, RESET, WEIGHT, DayRow, Readings
from boucle.storage import StoredReading, open_store
from gateway.aggregate import recompute_rollups

H = 1767225600  # 2026-01-01 00:00 UTC
METER = Device(id="ecully-fablab-grid", site="s", kind="energy", channel="grid_import", rated_power_w=36000)
BIN = Device(id="ecully-fablab-bin", site="s", kind="waste", stream="residual", capacity_kg=60)


def readings(ts_values) -> Readings:
    return Readings.of([StoredReading(ts, 1, i, v) for i, (ts, v) in enumerate(ts_values)])


def test_a_delta_accrues_linearly_between_its_readings():
    r = readings([(H - 300, {"energy_wh": 100}),       # the reading before the day
                  (H + 600, {"energy_wh": 190}),       # +90 Wh over 15 min: 30 before H, 60 after
                  (H + 1200, {"energy_wh": 250})])     # +60 Wh over 10 min
    iv = rollup.day_intervals("energy", H, r, METER.rated_power_w)
    assert iv.amount[:3].tolist() == [60_000 + 30_000, 30_000, 0]  # mWh per slot
    assert iv.received[:3].tolist() == [1, 1, 0]
    # covered: readings at or before a slot's start and at or after its end
    assert iv.covered[:2].tolist() == [True, False]
    assert iv.amount.sum() == 120_000  # the 30 Wh before the day belong to the day before


def test_resets_count_in_full_and_impossible_deltas_are_rejected():
    r = readings([(H, {"energy_wh": 1000}), (H + 60, {"energy_wh": 1010}),
                  (H + 120, {"energy_wh": 5}),          # reset: counts 5 Wh
                  (H + 180, {"energy_wh": 90_000}),     # 36 kW × 60 s × 1.5 + 1 = 901 Wh: rejected
                  (H + 240, {"energy_wh": 90_010})])
    iv = rollup.day_intervals("energy", H, r, METER.rated_power_w)
    assert iv.amount.sum() == (10 + 5 + 10) * 1000
    assert iv.flags.tolist() == [[H + 120, RESET], [H + 180, REJECTED]]
    # without a rated power the protocol's 1 MW bound applies: a 10 MWh jump is rejected
    glitch = readings([(H, {"energy_wh": 0}), (H + 60, {"energy_wh": 10_000_000})])
    assert rollup.day_intervals("energy", H, glitch).amount.sum() == 0


WATER = Device(id="ecully-fablab-water", site="s", kind="water", rated_flow_m3_h=2.5, profile="water-pulse")


def test_a_water_meter_is_a_meter_of_litres_reset_aware_with_its_rated_flow():
    from boucle.kinds import rated_per_hour

    r = readings([(H - 300, {"water_l": 100}),
                  (H + 600, {"water_l": 130}),          # +30 L over 15 min: 10 before H, 20 after
                  (H + 1200, {"water_l": 4}),            # reset: counts 4 L
                  (H + 1260, {"water_l": 200}),          # 2.5 m3/h × 60 s × 1.5 + 1 = 63.5 L: rejected
                  (H + 1320, {"water_l": 210, "flow_lpm": 10.0})])
    iv = rollup.day_intervals("water", H, r, rated_per_hour("water", WATER))
    assert rated_per_hour("water", WATER) == 2500
    # mL per slot: 20 L, then the reset's 4 L spread over H+600..H+1200 (2 L each side), then 10 L
    assert iv.amount[:2].tolist() == [20_000 + 2_000, 2_000 + 10_000]
    assert iv.amount.sum() == (20 + 4 + 10) * 1000
    assert iv.flags.tolist() == [[H + 1200, RESET], [H + 1260, REJECTED]]
    row = rollup.day_row(WATER.id, "water", iv)
    assert row.covered  # a meter: its slots' coverage is kept, as for energy
    month = rollup.month_row(WATER.id, "water", rollup.month_start(H), [row])
    assert month.slots == b""  # its only day is open (no reading after it yet): read from its day row
    amount, _ = rollup.month_slot_arrays([rollup.MonthSlots(*month[:2], month.slots, month.covered)], [row])
    assert amount[0, (H - month.month) // 900:][:2].tolist() == [22_000, 12_000]
    # without a rated flow the flow field's bound applies (10,000 L/min)
    glitch = readings([(H, {"water_l": 0}), (H + 60, {"water_l": 20_000})])
    assert rollup.day_intervals("water", H, glitch).amount.sum() == 0
    # a water reading in an energy meter's series is not energy
    assert rollup.day_intervals("energy", H, r).amount.sum() == 0


def test_cutting_a_day_keeps_its_slots_and_adds_up_to_them():
    r = readings([(H - 60 + 60 * i, {"energy_wh": 7 * i}) for i in range(1442)])
    whole = rollup.day_intervals("energy", H, r)
    cut = rollup.day_intervals("energy", H, r, cuts=[H + 4000, H + 50_000])
    assert cut.amount.size == whole.amount.size + 2
    assert cut.amount.sum() == whole.amount.sum() == 7 * 1440 * 1000
    inside = np.isin(cut.edges[:-1], whole.edges[:-1]) & np.isin(cut.edges[1:], whole.edges[1:])
    assert np.isin(cut.amount[inside], whole.amount).all()


def test_a_scale_bin_deposits_emptyings_and_its_fill_reading():
    weights = [0, 0, 2000, 2010, 5000, 4990, 100, 3000]
    r = readings([(H + 60 * i, {"weight_g": w, "fill_pct": w / 100}) for i, w in enumerate(weights)])
    iv = rollup.day_intervals("waste", H, r)
    # 2 kg, 3 kg, then after the emptying (to 100 g, counted as a deposit) 2.9 kg
    assert iv.amount.sum() == 2000 + 3000 + 100 + 2900
    assert iv.emptied.tolist() == [[H + 360, 5000.0, 50.0]]  # the top (5 kg) and its fill reading
    assert iv.measured[0] == WEIGHT | FILL


def test_a_fill_only_bin_has_emptyings_and_no_mass():
    fills = [10.0, 30.0, 55.0, 80.0, 5.0, 12.0]
    r = readings([(H + 900 * i, {"fill_pct": f}) for i, f in enumerate(fills)])
    iv = rollup.day_intervals("waste", H, r)
    assert iv.amount.sum() == 0
    assert iv.emptied.tolist() == [[H + 3600, pytest.approx(np.nan, nan_ok=True), 80.0]]
    assert iv.measured[0] == FILL


def test_bin_levels_start_from_the_reading_before_the_day():
    # 900 g at 23:50 was already counted the day before: the day's rise to 1,000 g adds nothing
    r = readings([(H - 600, {"weight_g": 900}), (H + 600, {"weight_g": 1000}), (H + 1200, {"weight_g": 1500})])
    assert rollup.day_intervals("waste", H, r).amount.sum() == 600


def test_rows_round_trip_and_months_sum_their_days():
    r = readings([(H - 60 + 60 * i, {"energy_wh": 5 * i}) for i in range(3 * 1440 + 2)])
    days = [rollup.day_row(METER.id, "energy", rollup.day_intervals(
        "energy", d, r.take(max(int(np.searchsorted(r.times, d)) - 1, 0), int(np.searchsorted(r.times, d + DAY)) + 1)))
        for d in (H, H + DAY, H + 2 * DAY)]
    back = rollup.day_intervals_of(days[1])
    assert back.amount.sum() == 5 * 1440 * 1000 and back.covered.all()
    month = rollup.month_row(METER.id, "energy", H, days)
    per_day = rollup.month_sums([month], 1)[0]["amount"]
    assert per_day[:4].tolist() == [5 * 1440 * 1000] * 3 + [0]
    assert rollup.held_days(month) == 3  # a reading at the third day's end: all three are closed
    assert np.frombuffer(month.slots, dtype=np.int32).sum() == per_day.sum()


def _day_rows_of(device: Device, r: Readings, days) -> list[DayRow]:
    return [rollup.day_row(device.id, device.kind, rollup.day_intervals(device.kind, d, r.take(
        max(int(np.searchsorted(r.times, d)) - 1, 0), int(np.searchsorted(r.times, d + DAY)) + 1)))
            for d in days]


@pytest.mark.parametrize("device", [METER, BIN])
def test_a_month_row_holds_its_closed_days_and_its_open_days_come_from_day_rows(device):
    """A gateway round rewrites the current day: the month's row (sums, events and a meter's
    slots of its closed days) stays the same, and reading it with the day rows gives every
    day's values, as a row of every day (written before the rule) does."""
    if device is METER:
        r = readings([(H + 60 * i, {"energy_wh": 2 * (i % 650)}) for i in range(2 * 1440 + 600)])
    else:  # emptied every 500 minutes, across the days
        r = readings([(H + 60 * i, {"weight_g": 50 * (i % 500)}) for i in range(2 * 1440 + 600)])
    days = (H, H + DAY, H + 2 * DAY)
    earlier, later = _day_rows_of(device, r.take(0, 2 * 1440 + 300), days), _day_rows_of(device, r, days)
    assert later[2] != earlier[2]  # two rounds of the third day
    first, second = (rollup.month_row(device.id, device.kind, H, rows) for rows in (earlier, later))
    assert first == second and rollup.sums_held_days(first) == 2  # the third day is open: not in the row
    assert rollup.open_spans([first], H, H + 31 * DAY) == {device.id: [(H + 2 * DAY, H + 31 * DAY)]}
    assert (first.slots is None) == (device is BIN) and (device is METER) == (rollup.held_days(first) == 2
                                                                               if first.slots is not None else False)
    # read with the open day's row: every day's sums and events, as from a row of every day
    sums = rollup.month_sums([first], 1, later[2:])[0]
    for i, day in enumerate(later):
        iv = rollup.day_intervals_of(day)
        assert (sums[i]["received"], sums[i]["amount"]) == (iv.received.sum(), iv.amount.sum())
        assert sums[i]["measured"] == np.bitwise_or.reduce(iv.measured)
    assert not sums[3:]["received"].any()
    full = first._replace(days=sums.tobytes(), events=b"".join(d.events for d in later))
    assert rollup.open_spans([full], H, H + 31 * DAY) == {}
    assert rollup.month_sums([full], 1).tobytes() == sums.tobytes()
    assert rollup.events(first.events).shape[0] < rollup.events(full.events).shape[0]  # events of the open day
    if device is METER:
        held = rollup.MonthSlots(METER.id, H, second.slots, second.covered)
        amount, covered = rollup.month_slot_arrays([held, held._replace(device="other")], later)
        for i, day in enumerate(later):
            iv = rollup.day_intervals_of(day)
            assert amount[0, i * 96:(i + 1) * 96].tolist() == iv.amount.tolist()
            assert covered[0, i * 96:(i + 1) * 96].tolist() == iv.covered.tolist()
        assert not amount[1, 2 * 96:].any() and not amount[0, 3 * 96:].any()  # no day row: nothing
        every = rollup.MonthSlots(METER.id, H, amount[0].tobytes(), np.packbits(covered[0]).tobytes())
        again = rollup.month_slot_arrays([every], later)
        assert again[0].tolist() == amount[:1].tolist() and again[1].tolist() == covered[:1].tolist()
    # the first reading of the next day closes the third one: the row then holds it
    closing = readings([*((int(t), {"energy_wh": 0} if device is METER else {"weight_g": 0})
                          for t in r.times), (H + 3 * DAY + 60, {"energy_wh": 0} if device is METER else {"weight_g": 0})])
    closed = rollup.month_row(device.id, device.kind, H, _day_rows_of(device, closing, days))
    assert rollup.sums_held_days(closed) == 3


def test_a_bin_day_row_without_coverage_written_before_reads_the_same():
    """Bins' day rows carry coverage now (for the closed-day rule); a row written before,
    without it, decodes to the same sums and events, and its month still closes on a later
    day's reading."""
    r = readings([(H + 600 * i, {"weight_g": 300 * (i % 40)}) for i in range(2 * 144 + 10)])
    rows = _day_rows_of(BIN, r, (H, H + DAY, H + 2 * DAY))
    assert rows[0].covered and rollup.day_intervals_of(rows[0]).covered[-1]
    old = [row._replace(covered=b"") for row in rows]
    for new, before in zip(rows, old):
        a, b = rollup.day_intervals_of(new), rollup.day_intervals_of(before)
        assert (a.received.tolist(), a.amount.tolist(), a.emptied.tobytes()) == (
            b.received.tolist(), b.amount.tolist(), b.emptied.tobytes())
    assert rollup.sums_held_days(rollup.month_row(BIN.id, "waste", H, old)) == 2  # days before the third's reading


@pytest.fixture(params=["sqlite", "influx"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    else:
        server = request.getfixturevalue("influxdb")
        s = open_store(f"influx+http://127.0.0.1:{server.port}/rollups")
    yield s
    s.close()


def _hours_wh(store, device, day):
    (row,) = store.day_rollups([device], day, day + DAY)
    amount = rollup.day_intervals_of(row).amount
    return amount.reshape(24, 4).sum(axis=1)


def test_a_late_reading_updates_the_days_it_touches(store):
    device = METER.id
    on_time = [Reading(device, 1, s, H + 60 * s, {"energy_wh": 1000 + 10 * s}) for s in range(120) if s != 60]
    store.write_readings(on_time, H + 7200.0)
    assert recompute_rollups(store, METER, H, H + 60 * 119)
    hours = _hours_wh(store, device, H)
    # from the first reading (at H) to the last (1 min before H + 2 h); the missing reading at
    # H + 1 h is interpolated
    assert hours[:2].tolist() == [600_000, 590_000]
    late = Reading(device, 1, 60, H + 3600, {"energy_wh": 1604})  # 4 Wh more than linear
    store.write_readings([late], H + 9000.0)
    assert recompute_rollups(store, METER, late.ts, late.ts)
    hours = _hours_wh(store, device, H)
    assert hours[:2].tolist() == [604_000, 586_000]
    (month,) = store.month_rollups([device], H, H + 31 * DAY)
    assert month.days == month.events == b""  # the day is open: its sums are its day row's
    first_day = rollup.month_sums([month], 1, store.day_rollups([device], H, H + DAY))[0][0]
    assert first_day["amount"] == 1_190_000 and first_day["received"] == 120
    assert month.slots is None  # read apart
    (slots,) = store.month_slots([device], H, H + DAY)
    assert slots.slots == b""  # the day is open: its slots are its day row's
    amount, _ = rollup.month_slot_arrays([slots], store.day_rollups([device], H, H + DAY))
    assert amount[0, :8].sum() == 1_190_000


def test_a_gap_spreads_its_delta_over_the_days_it_spans(store):
    device = METER.id
    store.write_readings([Reading(device, 1, 0, H + 3 * 3600, {"energy_wh": 0}),
                          Reading(device, 1, 1, H + 2 * DAY + 3 * 3600, {"energy_wh": 4800})], 0.0)
    assert recompute_rollups(store, METER, H + 2 * DAY + 3 * 3600, H + 2 * DAY + 3 * 3600)
    rows = store.day_rollups([device], H, H + 3 * DAY)
    amounts = [int(rollup.day_intervals_of(r).amount.sum()) for r in rows]
    assert [r.day for r in rows] == [H, H + DAY, H + 2 * DAY]
    assert amounts == [2_100_000, 2_400_000, 300_000]  # 21 h, 24 h and 3 h of 100 W


def test_bins_roll_up_on_both_stores(store):
    weights = [0, 0, 2000, 2010, 5000, 4990, 100, 3000]
    store.write_readings([Reading(BIN.id, 1, i, H + 60 * i, {"weight_g": w}) for i, w in enumerate(weights)], 0.0)
    assert recompute_rollups(store, BIN, H, H + 420)
    (row,) = store.day_rollups([BIN.id], H, H + DAY)
    iv = rollup.day_intervals_of(row)
    assert iv.amount.sum() == 8000 and iv.emptied[:, :2].tolist() == [[H + 360, 5000.0]]
    (month,) = store.month_rollups([BIN.id], H, H + DAY)
    assert month.events == b""  # its day is open (no reading after it yet)
    store.write_readings([Reading(BIN.id, 1, 8, H + DAY + 60, {"weight_g": 3000})], 0.0)
    assert recompute_rollups(store, BIN, H + DAY + 60, H + DAY + 60)
    (month,) = store.month_rollups([BIN.id], H, H + DAY)  # the next day's reading closed it
    assert rollup.events(month.events)[:, :2].tolist() == [[H + 360, rollup.EMPTIED]]
    assert store.month_slots([BIN.id], H, H + DAY) == []  # a bin has no slots to profile
