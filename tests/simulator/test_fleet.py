"""The fleet without a broker: same seed same bytes, the ledger equals what was sent,
and each fault has its documented effect on the payloads (docs/simulator.md)."""

import itertools
from collections import Counter
from pathlib import Path

import pytest

from boucle.accounting import waste_events
from boucle.protocol import split_signature
from boucle.registry import load_registry
from gateway.parse import Rejected, Signing, parse_rows
from simulator.faults import FaultError, garbage_payloads, parse_flag, resolve
from simulator.generate import generate_registry, parse_shape
from tests.conftest import EXAMPLE_REGISTRY, minute_registry
from tests.simulator.capture import START, drive, ledger_sum, server_wh

GRID = "ecully-fablab-grid"
BIN = "ecully-fablab-bin-residual"
FAULTS = [
    {"kind": "counter_reset", "start": "+2h", "devices": [GRID]},
    {"kind": "reboot", "start": "+90m", "devices": ["ecully-bakery-*"]},
    {"kind": "outage", "start": "+1h", "duration": "2h", "share": 0.2},
    {"kind": "duplicate", "start": "+3h", "count": 3, "devices": ["zim-*"]},
    {"kind": "unsynced_clock", "start": "+4h", "duration": "40m", "devices": ["cml-cheese-grid"]},
    {"kind": "garbage", "start": "+5h", "count": 4, "devices": [BIN]},
    {"kind": "dead_sensor", "start": "+30m", "duration": "1h", "devices": ["ecully-school-grid"]},
]


def readings_of(capture, device):
    """Unique readings of a device in the order they were sent: [(sent at, boot, reading)]."""
    seen, out = set(), []
    for at, body in capture.telemetry(device):
        for r in body["readings"]:
            if (body["boot"], r["seq"]) not in seen:
                seen.add((body["boot"], r["seq"]))
                out.append((at, body["boot"], r))
    return out


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    return drive(minute_registry(), tmp_path_factory.mktemp("faulty"), hours=6, faults=FAULTS)


def test_same_seed_same_bytes(tmp_path, faulty):
    again = drive(minute_registry(), tmp_path, hours=6, faults=FAULTS)
    assert again.sent == faulty.sent
    other = drive(minute_registry(), tmp_path, hours=6, faults=FAULTS, seed=2)
    assert other.sent != faulty.sent


def test_devices_with_a_key_sign_as_the_firmware_does(tmp_path):
    keys = {GRID: bytes(range(32)), BIN: bytes(32)}
    signing = Signing(keys, frozenset())
    capture = drive(EXAMPLE_REGISTRY, tmp_path, hours=1, keys=keys)
    telemetry = [(tp.split("/")[2], p) for _t, tp, p in capture.sent if tp.endswith("/telemetry")]
    signed = {device for device, p in telemetry if split_signature(p) is not None}
    assert signed == {GRID, BIN}
    for device, payload in telemetry:
        rows = parse_rows(device, payload, known_devices=None, now=START + 7200, signing=signing)
        assert not isinstance(rows, Rejected), (device, rows)
    unsigned = drive(EXAMPLE_REGISTRY, tmp_path, hours=1)  # the same readings, without their signatures
    assert [(tp, split_signature(p)[0] if split_signature(p) else p) for _t, tp, p in capture.sent] == \
        [(tp, p) for _t, tp, p in unsigned.sent]


def assert_ledger_is_what_the_server_counts(capture) -> dict:
    counted = {k: v for k, v in server_wh(capture).items() if v}
    ledger = {k: v for k, v in ledger_sum(capture.ledger_rows, "wh").items() if v}
    assert counted.keys() == ledger.keys()
    assert all(ledger[k] == pytest.approx(v, abs=1e-6) for k, v in counted.items())
    return counted


def test_the_ledger_equals_what_was_sent(faulty):
    counted = assert_ledger_is_what_the_server_counts(faulty)
    assert sum(counted.values()) > 10_000
    taken = ledger_sum(faulty.ledger_rows, "readings")
    per_device = Counter()
    for (device, _hour), n in taken.items():
        per_device[device] += n
    for device in per_device:
        assert len(readings_of(faulty, device)) == per_device[device], device
    assert faulty.fleet.readings == sum(per_device.values())


def test_a_counter_reset_is_visible_in_raw_counters(faulty):
    counters = [(r["ts"], r["energy_wh"]) for _at, _boot, r in readings_of(faulty, GRID)]
    drops = [(ts, before, after) for (_, before), (ts, after) in itertools.pairwise(counters) if after < before]
    assert len(drops) == 1
    ts, before, after = drops[0]
    assert ts == START + 2 * 3600 and before > 1000 and after < 100
    assert sum(r.get("counter_resets", 0) for r in faulty.ledger_rows if r["device"] == GRID) == 1


def test_a_reboot_counts_boots_and_restarts_seq(faulty):
    sent = readings_of(faulty, "ecully-bakery-grid")
    boots = sorted({boot for _at, boot, _r in sent})
    assert boots == [1, 2]
    second = [r for _at, boot, r in sent if boot == 2]
    assert second[0]["seq"] == 0 and second[0]["ts"] == START + 90 * 60
    assert [r["seq"] for r in second] == list(range(len(second)))
    births = [p for _at, t, p in faulty.sent if t == "boucle/v1/ecully-bakery-grid/status"]
    assert births and b'"boot":2' in births[-1]


def test_an_outage_delays_then_replays_oldest_first(faulty):
    down = resolve(FAULTS, [d.id for d in load_registry(EXAMPLE_REGISTRY).devices], START, 1)[2]
    assert 3 <= len(down.devices) <= 10
    for device in down.devices:
        sent = faulty.telemetry(device)
        assert not [at for at, _ in sent if down.start <= at < down.end]
        replay = [body for at, body in sent if at == down.end]
        # the 2-hour backlog goes in a few payloads of up to 8 KiB, not one per reading
        # (zim-* devices also publish their first payloads twice from +3h: count each reading once)
        assert len(replay) <= 8 and len({r["seq"] for b in replay for r in b["readings"]}) == 121
        stamps = [r["ts"] for _at, _boot, r in readings_of(faulty, device)]
        assert stamps == sorted(stamps) == list(range(START, START + 6 * 3600, 60))


def test_readings_taken_before_the_clock_syncs_are_restamped(faulty):
    device, sync = "cml-cheese-grid", START + 4 * 3600 + 40 * 60
    sent = readings_of(faulty, device)
    unsynced = [(at, r) for at, boot, r in sent if boot == 2 and r["ts"] < sync]
    assert len(unsynced) == 40
    assert all(at == sync for at, _r in unsynced)  # nothing left before NTP answered
    assert [r["ts"] for _at, r in unsynced] == list(range(START + 4 * 3600, sync, 60))


def test_a_dead_sensor_goes_silent(faulty):
    stamps = {r["ts"] for _at, _boot, r in readings_of(faulty, "ecully-school-grid")}
    assert len(stamps) == 6 * 60 - 60
    assert not stamps & set(range(START + 1800, START + 5400))


def test_duplicates_and_garbage_are_counted(faulty):
    payloads = [p for _at, t, p in faulty.sent if t.startswith("boucle/v1/zim-") and t.endswith("/telemetry")]
    repeated = sum(n - 1 for n in Counter(payloads).values())
    duplicates = sum(r.get("duplicates", 0) for r in faulty.ledger_rows)
    assert repeated == duplicates == 3 * len([d for d in load_registry(EXAMPLE_REGISTRY).devices
                                              if d.id.startswith("zim-")])
    assert faulty.fleet.sent["duplicates"] == duplicates
    assert sum(r.get("garbage", 0) for r in faulty.ledger_rows) == faulty.fleet.sent["garbage"] == 4
    garbage = garbage_payloads(BIN, 1, 4)
    assert len(set(garbage)) == 4
    sent = [p for at, t, p in faulty.sent if t == f"boucle/v1/{BIN}/telemetry" and at == START + 5 * 3600]
    assert sent[-4:] == garbage


def test_a_full_buffer_drops_the_oldest_and_counts_them(tmp_path):
    registry = tmp_path / "two.toml"
    registry.write_text(generate_registry(1, 1, 2))
    capture = drive(registry, tmp_path, hours=36, faults=[{"kind": "outage", "start": "+1h", "duration": "34h"}])
    dropped = sum(r.get("dropped", 0) for r in capture.ledger_rows)
    # 2040 readings taken offline, plus the one taken in the minute the link came back
    # (pushed before the flush, as on the board), into a 2000-reading buffer
    assert dropped == 2 * (34 * 60 + 1 - 2000)
    stamps = [r["ts"] for _at, _boot, r in readings_of(capture, "t000-s0000-d00")]
    assert stamps[60] == START + 3600 + dropped // 2 * 60  # the oldest went first
    assert_ledger_is_what_the_server_counts(capture)


def test_some_bins_overflow_and_some_rounds_come_early(tmp_path):
    capture = drive(minute_registry(), tmp_path, hours=14 * 24, interval=600, batch=200)
    overflows = ledger_sum(capture.ledger_rows, "overflows")
    emptyings = Counter()
    for (device, _hour), n in ledger_sum(capture.ledger_rows, "emptyings").items():
        emptyings[device] += n
    assert {device for device, _ in overflows}  # some bins overflow...
    assert len({device for device, _ in overflows}) < len(emptyings) / 2  # ...not most
    assert set(emptyings.values()) >= {2, 3}  # weekly rounds, some of them a day early


def test_generated_registry_loads_with_the_asked_shape(tmp_path):
    assert parse_shape("3x4x5") == (3, 4, 5)
    with pytest.raises(ValueError, match="TERRITORIESxSITESxDEVICES"):
        parse_shape("3x4")
    text = generate_registry(3, 4, 5, seed=7)
    assert text == generate_registry(3, 4, 5, seed=7) != generate_registry(3, 4, 5, seed=8)
    path = tmp_path / "gen.toml"
    path.write_text(text)
    registry = load_registry(path)
    assert (len(registry.territories), len(registry.sites), len(registry.devices)) == (3, 12, 60)
    kinds = Counter(d.channel or "waste" for d in registry.devices)
    assert kinds["grid_import"] == 12 and kinds["pv_production"] == 12 and kinds["waste"] > 0


def test_fault_descriptions_are_checked():
    ids = ["a-grid", "a-bin", "b-grid"]
    assert parse_flag("kind=outage,start=+2h,duration=30m,devices=a-*|b-grid") == {
        "kind": "outage", "start": "+2h", "duration": "30m", "devices": ["a-*", "b-grid"]}
    (fault,) = resolve([parse_flag("kind=outage,start=+2h,duration=30m,devices=a-*")], ids, 1000, 1)
    assert (fault.start, fault.end, fault.devices) == (1000 + 7200, 1000 + 9000, ("a-grid", "a-bin"))
    for spec, message in [({"kind": "flood"}, "kind must be one of"),
                          ({"kind": "outage"}, "give a duration"),
                          ({"kind": "reboot", "devices": ["zz*"]}, "no device matches"),
                          ({"kind": "outage", "duration": "soon"}, "duration 'soon'"),
                          ({"kind": "reboot", "when": "+1h"}, "unknown field 'when'")]:
        with pytest.raises(FaultError, match=message):
            resolve([spec], ids, 1000, 1)
    with pytest.raises(FaultError, match="key=value"):
        parse_flag("outage")


def test_the_example_faults_file_resolves_against_the_example_registry():
    from simulator.faults import KINDS, load_fault_file

    specs = load_fault_file(Path(__file__).parents[2] / "simulator" / "faults.example.toml")
    faults = resolve(specs, [d.id for d in load_registry(EXAMPLE_REGISTRY).devices], START, 1)
    assert {f.kind for f in faults} == set(KINDS)
    assert next(f for f in faults if f.kind == "dead_sensor").end is None


def test_a_device_samples_at_its_registry_interval(tmp_path):
    text = generate_registry(1, 1, 2).replace('profile = "waste-scale"', 'profile = "waste-scale"\ninterval_s = 300')
    registry = tmp_path / "slow.toml"
    registry.write_text(text)
    capture = drive(registry, tmp_path, hours=1)
    grid = [r["ts"] - START for _at, _boot, r in readings_of(capture, "t000-s0000-d00")]
    scale = [r["ts"] - START for _at, _boot, r in readings_of(capture, "t000-s0000-d01")]
    assert grid == list(range(0, 3600, 60)) and scale == list(range(0, 3600, 300))


def test_the_end_of_a_run_sends_a_whole_backlog(tmp_path):
    registry = tmp_path / "two.toml"
    registry.write_text(generate_registry(1, 1, 2))
    # back one minute before the end: far more than one cycle's 10 payloads are waiting
    capture = drive(registry, tmp_path, hours=30, faults=[{"kind": "outage", "start": "+1h", "end": START + 30 * 3600 - 60}])
    for device in ("t000-s0000-d00", "t000-s0000-d01"):
        assert len(readings_of(capture, device)) == 30 * 60
    # the meter's readings are larger (about 67 a payload): its last step sent 10 payloads
    # and the end of the run the rest
    assert len([1 for at, _ in capture.telemetry("t000-s0000-d00") if at == START + 30 * 3600]) > 10


def test_current_clamps_have_gain_errors_and_meters_count_true(tmp_path):
    capture = drive(minute_registry(), tmp_path, hours=12)
    meters = {i: d for i, d in capture.fleet.devices.items() if d.device.kind == "energy"}
    clamps = {i: m for i, m in meters.items() if m.device.profile == "energy-ct"}
    assert clamps and {round(m.gain, 6) for m in clamps.values()} != {1.0}
    for m in meters.values():
        if m.true_wh < 500:
            continue  # too little energy to compare (a machine that stayed idle)
        if m.device.profile == "energy-ct":
            # counts its own power: off by its gain error (about 1 %), not by more than 5 %
            assert m.counter.total_wh != pytest.approx(m.true_wh, abs=1)
            assert m.counter.total_wh == pytest.approx(m.true_wh, rel=0.05)
        else:
            assert m.counter.total_wh == pytest.approx(m.true_wh, abs=1)  # integer Wh, remainder kept


def test_fleet_step_is_the_common_divisor_of_the_intervals():
    from simulator.run import fleet_step

    registry = load_registry(EXAMPLE_REGISTRY)
    step = fleet_step(registry)
    assert step == 300 and all(d.interval_s % step == 0 for d in registry.devices)
    assert fleet_step(load_registry(EXAMPLE_REGISTRY).model_copy(update={"devices": []})) == 60


def test_a_bin_reports_an_emptying_at_once_and_no_deposit_is_lost(tmp_path):
    """A bin reports every 15 minutes (the example registry) and samples at every fleet
    step; an emptying goes out at once with the sample before it, so the server's
    accounting finds each collection's full mass, and every deposit is in a reading."""
    capture = drive(EXAMPLE_REGISTRY, tmp_path, hours=7 * 24, interval=300, batch=200)
    rows = capture.ledger_rows
    off_grid = 0
    for dev_id, vd in capture.fleet.devices.items():
        if vd.device.kind != "waste" or not vd.measures_weight:
            continue
        readings = sorted((r["ts"], r["weight_g"]) for _at, _boot, r in readings_of(capture, dev_id))
        off_grid += sum(1 for ts, _ in readings if (ts - START) % vd.device.interval_s)
        events = waste_events([t for t, _ in readings], [w for _, w in readings])
        mine = [r for r in rows if r["device"] == dev_id]
        collected = sum(r.get("collected_kg", 0) for r in mine)
        emptyings = sum(r.get("emptyings", 0) for r in mine)
        assert len(events.emptyings) <= emptyings
        assert abs(events.collected_g / 1000 - collected) <= 0.3 * emptyings, dev_id
        deposited = sum(r.get("deposited_kg", 0) for r in mine)
        shown = sum(r.get("reported_kg", 0) for r in mine)
        assert abs(events.deposited_g / 1000 - shown) <= 0.3 + 0.01 * shown, dev_id
        # every deposit is in a reading: the first (the server's baseline), a later one, or
        # none yet (after the bin's last reading)
        assert abs(deposited - (readings[0][1] / 1000 + shown + vd.unreported_kg)) <= 0.1, dev_id
    assert off_grid  # some emptyings came between two reports, and went out with the sample before
