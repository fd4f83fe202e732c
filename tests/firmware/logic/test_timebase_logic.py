# Monotonic time, Unix conversion and re-stamping: CPython and MicroPython.
from boucle_fw.scheduler import Scheduler
from boucle_fw.timebase import EPOCH_2000_TO_UNIX, Timebase, ntp_to_unix, ticks_diff


class Ticks:
    def __init__(self, start=0, period=1 << 30):
        self.t = start
        self.period = period

    def __call__(self):
        return self.t

    def advance(self, ms):
        self.t = (self.t + ms) % self.period


def test_ticks_diff_wraps():
    p = 1 << 30
    assert ticks_diff(5, p - 5) == 10
    assert ticks_diff(p - 5, 5) == -10


def test_monotonic_across_the_ticks_wrap():
    ticks = Ticks(start=(1 << 30) - 1000)
    tb = Timebase(ticks)
    seen = []
    for _ in range(10):
        ticks.advance(400)
        seen.append(tb.now_ms())
    assert seen == [400 * (i + 1) for i in range(10)]


def test_esp32_epoch_2000():
    # 2026-01-01T00:00:00Z as the ESP32's time.time() gives it after ntptime.settime()
    assert ntp_to_unix(1767225600 - EPOCH_2000_TO_UNIX, 2000) == 1767225600
    assert ntp_to_unix(1767225600, 1970) == 1767225600


def test_readings_before_sync_are_restamped():
    ticks = Ticks()
    tb = Timebase(ticks)
    early = []
    for _ in range(3):
        early.append(tb.stamp({"seq": len(early), "boot": 4}))
        ticks.advance(60000)
    assert [r["ts"] for r in early] == [None, None, None]
    tb.sync(1767225600)  # taken at mono 180000
    changed = [tb.restamp(r, 4) for r in early]
    assert changed == [True, True, True]
    assert [r["ts"] for r in early] == [1767225420, 1767225480, 1767225540]
    assert "mono_ms" not in early[0]
    assert tb.restamp(early[0], 4) is False  # once only
    late = tb.stamp({"seq": 3, "boot": 4})
    assert late["ts"] == 1767225600


def test_readings_of_an_earlier_boot_cannot_be_placed():
    tb = Timebase(Ticks())
    r = {"seq": 0, "boot": 3, "ts": None, "mono_ms": 5}
    tb.sync(1767225600)
    assert tb.restamp(r, 4) is False and r["ts"] is None


def test_scheduler_keeps_its_grid_and_skips_missed_runs():
    s = Scheduler()
    s.every("sample", 60000, 0)
    s.every("health", 600000, 0)
    assert s.due(0) == ["sample", "health"]
    assert s.due(59999) == []
    assert s.due(63000) == ["sample"]  # late by 3 s: next still at 120000
    assert s.wait_ms(63000) == 57000
    assert s.due(400000) == ["sample"]  # stalled: one run, not five
    assert s.wait_ms(400000) == 20000
    s.reschedule("sample", 10000, 400000)
    assert s.period("sample") == 10000 and s.due(410000) == ["sample"]
