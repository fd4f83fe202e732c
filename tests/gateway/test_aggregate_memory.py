"""The aggregate stage's round (gateway.aggregate.roll_up) rolls up from its memory of what
the writer stored (gateway.recent) without reading it back, and stays right when the memory
is not the store's: another gateway process writing the same device (new readings, a point
written over), a restart, a memory too small. Real SQLite and a real InfluxDB.

Right means: every stored rollup row is what the store's own readings give
(`assert_rollups_are_the_readings`), the invariant the indicators rely on."""

from __future__ import annotations

import numpy as np

from boucle import rollup
from boucle.protocol import Reading, ReadingRow, reading_row
from boucle.registry import Device
from boucle.rollup import DAY, Readings
from boucle.storage import open_store
from gateway.aggregate import FAR, day_rows, roll_up
from gateway.recent import RecentReadings
from tests.store_calls import Counting

H = 1767225600  # 2026-01-01 00:00 UTC
METER = Device(id="ecully-fablab-grid", site="s", kind="energy", channel="grid_import", rated_power_w=36000)
BIN = Device(id="ecully-fablab-bin", site="s", kind="waste", stream="residual", capacity_kg=60)
DEVICES = {d.id: d for d in (METER, BIN)}


def stream(start: int, minutes: int, boot: int = 1, first_seq: int = 0) -> list[Reading]:
    """A meter and a bin read every minute from `start`, with a counter reset and an emptying."""
    out = []
    for i in range(minutes):
        t, seq = start + 60 * i, first_seq + i
        wh = 1000 + 7 * (seq % 500)  # resets every 500 readings
        out.append(Reading(METER.id, boot, seq, t, {"energy_wh": wh, "power_w": 420.0}))
        weight = 400 * (seq % 90)  # emptied every 90 readings
        out.append(Reading(BIN.id, boot, seq, t, {"weight_g": weight, "fill_pct": round(weight / 400, 1)}))
    return out


def write(store, recent: RecentReadings | None, readings: list[Reading], received: float) -> list:
    """What the writer does (the store's confirmation, then the memory); the dirty spans."""
    rows: list[ReadingRow] = [reading_row(r) for r in readings]
    if recent is None:  # another process: the store only
        store.write_rows(rows, received)
    else:
        with recent.lock:
            store.write_rows(rows, received)
            recent.add(rows, received)
    spans: dict[str, tuple[int, int]] = {}
    for r in readings:
        lo, hi = spans.get(r.device, (r.ts, r.ts))
        spans[r.device] = (min(lo, r.ts), max(hi, r.ts))
    return [(d, lo, hi) for d, (lo, hi) in spans.items()]


def until_done(store, recent, spans, rounds: int = 5) -> int:
    """Rounds of roll_up until every span is done (as the aggregator loops); how many."""
    for n in range(1, rounds + 1):
        done = roll_up(store, recent, DEVICES, spans)
        spans = [s for s in spans if s not in done]
        if not spans:
            return n
    raise AssertionError(f"not done after {rounds} rounds: {spans}")


def assert_rollups_are_the_readings(store) -> None:
    """Every stored day row is the day computed from the store's readings, every day with
    readings has one, and every month row is made of the stored day rows."""
    for device in DEVICES.values():
        readings = Readings.of(store.readings(device.id, 0, FAR, rollup.FIELDS))
        days = {r.day: r for r in store.day_rollups([device.id], 0, FAR)}
        assert set(np.unique(readings.times - readings.times % DAY).tolist()) <= set(days)
        for day, row in days.items():
            assert row == day_rows(device, range(day, day + DAY, DAY), readings)[day], (device.id, day)
        sums = {m.month: m for m in store.month_rollups([device.id], 0, FAR)}
        slots = {m.month: m for m in store.month_slots([device.id], 0, FAR)}
        assert set(sums) == {rollup.month_start(d) for d in days}
        for month, got in sums.items():
            want = rollup.month_row(device.id, device.kind, month,
                                    [r for d, r in days.items() if rollup.month_start(d) == month])
            assert (got.days, got.events) == (want.days, want.events)
            if device.kind == "energy":
                assert (slots[month].slots, slots[month].covered) == (want.slots, want.covered)


def test_a_round_rolls_up_what_was_written_without_reading_it_back(store_url):
    store = Counting(open_store(store_url))
    recent = RecentReadings(10**6)
    readings = stream(H - 3 * 3600, 6 * 60)  # across midnight: two days, two months
    slots_written, months_written = [], []
    write_rollups = store.store.write_rollups

    def counted(days, months):  # the real write; how many month rows and slots rows it carried
        months_written.append(len(months))
        slots_written.append(sum(m.slots is not None for m in months))
        write_rollups(days, months)

    store.store.write_rollups = counted
    try:
        for n, i in enumerate(range(0, len(readings), 60)):
            spans = write(store, recent, readings[i:i + 60], float(n))
            assert until_done(store, recent, spans) == 1
        assert store.calls["readings"] == store.calls["next_reading_ts"] == 0
        assert store.calls["reading_counts"] == 0  # checked with a few marks a round instead
        # the meter's slots rows hold closed days: written when a month gets one (the first
        # round, an empty row; at midnight, December's with its last day, and January's), not
        # in the rounds of an open day
        assert slots_written == [1, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0]  # half-hours from 21:00
        # so do both devices' month rows (sums and events of closed days): the rounds of an
        # open day write its day rows only
        assert months_written == [2, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0]
        assert_rollups_are_the_readings(store.store)
    finally:
        store.close()


def test_readings_written_by_another_process_make_the_round_fall_back_to_the_store(store_url):
    store = open_store(store_url)
    mine, theirs = RecentReadings(10**6), RecentReadings(10**6)
    readings = stream(H + 3600, 120)
    try:
        assert until_done(store, mine, write(store, mine, readings[:80], 1.0)) == 1
        # the other gateway got the next messages of the same devices (a shared subscription)
        assert until_done(store, theirs, write(store, theirs, readings[80:160], 2.0)) == 1
        # ... and another reading in the same second as one of this process's: InfluxDB writes
        # it over that point (as the memory does), the embedded store keeps both (the memory
        # cannot: its round is not done, the next one is, from the store)
        over = Reading(METER.id, 2, 0, readings[10].ts, {"energy_wh": 5, "power_w": 1.0})
        assert until_done(store, theirs, write(store, theirs, [over], 3.0)) == (2 if store.dedups else 1)
        # this process's next round is made from a memory that lacks them: not done, then
        # done from the store
        assert until_done(store, mine, write(store, mine, readings[160:], 4.0)) == 2
        assert_rollups_are_the_readings(store)
    finally:
        store.close()


def test_after_a_restart_the_memory_is_reloaded_from_the_store(store_url):
    store = Counting(open_store(store_url))
    readings = stream(H + 3600, 200)
    try:
        before = RecentReadings(10**6)
        assert until_done(store, before, write(store, before, readings[:200], 1.0)) == 1
        after = RecentReadings(10**6)  # a new process: nothing remembered
        assert until_done(store, after, write(store, after, readings[200:300], 2.0)) == 1
        assert store.calls["readings"] >= 1  # the day read once ...
        reads = store.calls["readings"]
        assert until_done(store, after, write(store, after, readings[300:], 3.0)) == 1
        assert store.calls["readings"] == reads  # ... and remembered from then on
        assert_rollups_are_the_readings(store.store)
    finally:
        store.close()


def test_late_readings_and_a_small_memory_stay_right(store_url):
    store = open_store(store_url)
    recent = RecentReadings(150)  # fewer readings than the devices send in a round
    readings = stream(H - 2 * DAY, 3 * 1440)
    readings = [r for r in readings if r.ts % 600 < 60]  # one every 10 minutes, three days
    try:
        late, on_time = readings[:40], readings[40:]
        for n, i in enumerate(range(0, len(on_time), 50)):
            until_done(store, recent, write(store, recent, on_time[i:i + 50], float(n)))
        until_done(store, recent, write(store, recent, late, 99.0))  # a day and more late
        assert_rollups_are_the_readings(store)
    finally:
        store.close()
