"""The hardware layer on a fake ESP32 (machine, network, esp32, ntptime faked; nothing else)."""

from __future__ import annotations

import time

import pytest
from boucle_fw.accounting import CounterStore, EnergyCounter
from boucle_fw.hw import system
from boucle_fw.hw.wifi import Wifi
from boucle_fw.timebase import EPOCH_2000_TO_UNIX

from tests.firmware.board import Board


@pytest.fixture
def board(monkeypatch):
    return Board().install(monkeypatch)


def test_wifi_backs_off_and_gives_up_after_the_bounded_reconnects(board):
    board.ap_up = False
    wifi = Wifi("atelier", "pw", reconnects=4, time_mod=time, join_timeout_ms=1000,
                backoff_ms=(2000, 10000))
    results = []
    for _ in range(200):  # a minute of loop turns, 300 ms apart
        results.append(wifi.ensure())
        board.sleep_ms(300)
    assert not any(results)
    # joins spaced by 2, 4, 8, then 10 s of backoff (+1 s join timeout), not one per turn
    assert board.joins == wifi.joins == 8
    assert wifi.gave_up and wifi.failures >= 4
    board.ap_up = True
    board.sleep_ms(10000)
    assert wifi.ensure() and wifi.failures == 0 and not wifi.gave_up
    assert wifi.rssi() == -61


def test_reset_cause_words(board):
    import machine
    for code, word in ((Board.PWRON_RESET, "power_on"), (Board.WDT_RESET, "watchdog"),
                       (Board.DEEPSLEEP_RESET, "deep_sleep"), (9, "other_9")):
        board.cause = code
        assert system.reset_cause(machine) == word


def test_boot_counter_in_nvs(board):
    import esp32
    nvs = system.Nvs(esp32)
    assert [system.next_boot(nvs) for _ in range(3)] == [0, 1, 2]
    assert system.next_boot(nvs, woke_from_deep_sleep=True) == 2  # no flash write per wake
    assert system.next_boot(system.Nvs(esp32)) == 3
    assert nvs.get_blob("absent") is None


def test_energy_survives_soft_reset_exactly_and_power_cut_monotonic(board):
    import esp32
    import machine

    def store():
        return CounterStore(system.RtcMemory(machine.RTC()).cell("e"),
                            system.Nvs(esp32).cell("energy"), persist_wh=100, persist_s=900)

    s = store()
    c = s.restore()
    published = 0
    for t in range(1, 100):
        c.add_power(1234.5, 60000)
        s.cycle(c, t * 60)
        published = c.total_wh
    commits = board.nvs_commits
    assert commits <= 99 * 20.6 / 100 + 2  # NVS written every 100 Wh, not every cycle
    again = store().restore()  # watchdog or soft reset: RTC memory kept
    assert (again.total_wh, again.rem_mwms) == (c.total_wh, c.rem_mwms)
    board.power_cut()
    s2 = store()
    after = s2.restore()
    assert s2.restored_from == "nvs" and published <= after.total_wh <= published + 100


def test_rtc_memory_rejects_garbage(board):
    import machine
    board.rtc_memory = bytes(range(200))
    assert system.RtcMemory(machine.RTC()).data == {}
    mem = system.RtcMemory(machine.RTC())
    mem.data["seq"] = 41
    mem.cell("e").set(EnergyCounter(99).to_bytes())
    again = system.RtcMemory(machine.RTC())
    assert again.data["seq"] == 41
    assert EnergyCounter.from_bytes(again.cell("e").get()).total_wh == 99


def test_ntp_time_in_unix_seconds(board):
    class Esp32Time:
        """time on the ESP32: seconds since 2000-01-01."""

        def time(self):
            return 1767225600 - EPOCH_2000_TO_UNIX

        def gmtime(self, s):
            return (2000, 1, 1, 0, 0, 0, 5, 1)

    assert system.ntp_unix("pool.ntp.org", Esp32Time()) == 1767225600
    assert abs(system.ntp_unix("pool.ntp.org", time) - time.time()) < 5
    board.ntp_up = False
    assert system.ntp_unix("pool.ntp.org", time) is None


def test_settings_survive_reboots(board):
    import esp32
    s = system.Settings(system.Nvs(esp32))
    s.set("interval_s", 300)
    s.set("hx711", [8123, 421.5])
    again = system.Settings(system.Nvs(esp32))
    assert again.get("interval_s") == 300 and again.get("hx711") == [8123, 421.5]
