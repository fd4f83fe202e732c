"""The 60-day soak of the firmware on the unix-port MicroPython (tests/firmware/soak.py):
energy exact against the meter within the power-cut bound, no reading lost beyond the
buffer bound, a heap that does not grow, NVS writes within the flash-wear budget.
Writes its figures to tests/artifacts/soak.json (quoted in docs/performance.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.firmware import soak

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
NVS_WRITES_PER_DAY_BUDGET = 1000  # see docs/performance.md: ~40 years of NVS at this rate


def test_sixty_days(unix_micropython, broker, tmp_path):
    days = int(os.environ.get("BOUCLE_SOAK_DAYS", "60"))
    report = soak.run_soak(unix_micropython, broker, tmp_path / "board", days=days)
    figures = report.figures()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "soak.json").write_text(json.dumps(figures, indent=1))
    print("\nsoak:", json.dumps(figures))

    boots = report.boots
    # What happened: resets it did itself (Wi-Fi given up), power cuts at random
    # points, the ticks wrapping, no watchdog, no crash
    assert figures["power_cuts"] >= 5 and report.resets.get("soft", 0) >= 1
    assert set(report.resets) == {"soft"}, report.resets
    assert figures["ticks_wraps"] >= 3

    # Energy: every reading is the resumed total plus exactly the pulses the meter had
    # given at that read. A boot resumes exactly after a reset, and from the NVS ceiling
    # after a power cut: at most persist_wh above what was counted, at worst the interval
    # being counted below it (a cut between its NVS write and commit)
    for (b, seq), r in report.readings.items():
        assert r["energy_wh"] == boots[b].energy_start_wh + boots[b].reads[seq], (b, seq)
    for b in boots:
        if b.ended == "cut":
            change = boots[b.index + 1].energy_start_wh - (b.energy_start_wh + b.reads[-1])
            assert -(b.reads[-1] - b.reads[-2]) <= change <= soak.PERSIST_WH, (b.index, change)
    last_seq = max(s for b, s in report.readings if b == boots[-1].index)
    unread_at_end = boots[-1].pulses - boots[-1].reads[last_seq]
    assert figures["device_last_wh"] == (figures["meter_wh"] + sum(figures["overcount_per_cut_wh"])
                                         - sum(figures["unread_tail_per_cut_wh"]) - unread_at_end)

    # Readings: none lost but the oldest past the buffer's capacity (counted by the board
    # as dropped) and, at a power cut, the one being taken
    lost = report.lost()
    in_flight = {(b.index, report.taken(b) - 1) for b in boots if b.ended == "cut"}
    dropped = [k for k in lost if k not in in_flight]
    # Mosquitto 2.0.11 has crashed (double free) under this traffic once in a dozen runs
    # while developing the soak: the harness starts it again. What it had accepted and not
    # yet delivered is its loss, not the board's, and is allowed for, a few per crash.
    by_broker = len(dropped) - report.dropped()
    assert 0 <= by_broker <= 10 * len(report.broker_crashes), (len(dropped), report.dropped(), report.health[-1:])
    assert 0 < report.dropped() <= (5 * 60 - soak.CAPACITY) + 32  # the 5 h outage: excess + a segment
    if not by_broker:  # then every loss is the buffer's: the oldest of one outage, in a row
        assert len({b for b, _ in dropped}) == 1
        seqs = sorted(s for _, s in dropped)
        assert seqs == list(range(seqs[0], seqs[-1] + 1))

    # Clock: the k-th reading of a boot is stamped k minutes after it started (plus the
    # Wi-Fi join and NTP of that cycle), off by the last NTP answer's error: the resyncs
    # that jumped (+-90 s) moved the stamps, and nothing else did
    offsets = []
    for (b, seq), r in report.readings.items():
        offsets.append(r["ts"] - (boots[b].start_ms // 1000 + 60 * seq))
    assert -92 <= min(offsets) and max(offsets) <= 90 + 30
    assert max(offsets) - min(offsets) > 60

    # Heap: allocated after a collection, sampled daily once a boot has run a day, does
    # not grow over the weeks
    steady = [h for h in report.heap if h["uptime_h"] >= 24]
    assert len(steady) >= days // 2
    early = max(h["alloc"] for h in steady[:5])
    assert all(h["alloc"] <= early + 1024 for h in steady), steady

    # Flash: NVS writes per day within the budget; the buffer was on flash only offline
    per_day = sum(report.nvs_writes.values()) / report.days
    assert per_day <= NVS_WRITES_PER_DAY_BUDGET
    assert set(report.nvs_writes) == {"energy", "boot"}
    assert not (tmp_path / "board" / "flash" / "buffer").exists() or not [
        p for p in (tmp_path / "board" / "flash" / "buffer").iterdir() if p.name.isdigit()]
    assert all(h["buffer_depth"] == 0 for h in report.health[-3:])
