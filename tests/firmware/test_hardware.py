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


def test_pulse_input_with_pin_interrupt(board):
    import machine
    from boucle_fw.drivers.pulse import PulseInput
    s0 = PulseInput(27, pulses_per_kwh=1000, debounce_ms=20, machine_mod=machine)
    pin_irq = s0.timer  # the interrupt handler feeds this
    assert s0.hw is None
    for _ in range(10):  # a pulse every 3.6 s: 1 kW
        board.sleep_ms(3600)
        s0._irq(None)
        board.sleep_ms(5)
        s0._irq(None)  # contact bounce, ignored
    r = s0.read()
    assert r["pulses"] == 10 == pin_irq.count
    assert abs(r["power_w"] - 1000.0) < 2  # 3605 ms apart (the bounce delay)
    assert s0.read()["pulses"] == 0


def test_pulse_input_prefers_the_hardware_counter(board, monkeypatch):
    import machine
    from boucle_fw.drivers.pulse import PulseInput

    class Counter:
        UP, FALLING = 1, 2

        def __init__(self, unit, src, direction=None, edge=None, filter_ns=0):
            self.filter_ns = filter_ns
            self.n = 0

        def value(self):
            return self.n

    monkeypatch.setattr(machine, "Counter", Counter, raising=False)
    s0 = PulseInput(27, pulses_per_kwh=800, machine_mod=machine)
    assert isinstance(s0.hw, Counter) and s0.hw.filter_ns <= 12800
    s0.hw.n = 2000
    assert s0.read()["pulses"] == 2000
    s0.hw.n = 2003
    assert s0.read()["pulses"] == 3


class Pcnt:
    """esp32.PCNT as the ESP32 has it: a 16-bit counter that returns to 0 on reaching max."""

    INCREMENT = 1

    def __init__(self, unit, pin=None, falling=None, filter=0, min=0, max=0):
        assert -32768 <= min <= 0 < max <= 32767, "PCNT limits are 16-bit"
        self.max = max
        self.count = 0
        self.started = False

    def start(self):
        self.started = True

    def pulse(self, n=1):
        for _ in range(n):
            self.count += 1
            if self.count == self.max:
                self.count = 0

    def value(self):
        return self.count


def test_pulse_input_on_pcnt_counts_across_its_16_bit_limit_and_the_ticks_wrap(board):
    import types

    import machine
    from boucle_fw.drivers.pulse import PulseInput
    board.virtual_us = ((1 << 30) - 30000) * 1000  # ticks_ms 30 s before its wrap
    esp32 = types.SimpleNamespace(PCNT=Pcnt)
    s0 = PulseInput(27, pulses_per_kwh=1000, esp32_mod=esp32, machine_mod=machine)
    assert isinstance(s0.hw, Pcnt) and s0.hw.started
    counted = 0
    for read in range(6):
        for _ in range(10):  # pulses 1.2 s apart (3 kW) seen by the pin IRQ, which times them
            board.sleep_ms(1200)
            s0._irq(None)
        s0.hw.pulse(30010 if read % 2 == 0 else 10)  # PCNT counts; every other read it wraps
        counted += s0.read()["pulses"]
    assert counted == 3 * 10 + 3 * 30010
    assert board.ticks_ms() < 60000  # the ticks wrapped meanwhile
    assert abs(s0.read()["power_w"] - 3000.0) < 1


class Hx711Pins:
    """DOUT/SCK of an HX711 holding a conversion: each SCK rising edge shifts the next bit
    (MSB first) onto DOUT; the 25th pulse ends the read; DOUT low means ready."""

    def __init__(self, counts):
        self.counts = counts
        self.shifting = False
        self.n = 0
        self.current = 0
        self.pulses = 0

    class Dout:
        def __init__(self, outer):
            self.o = outer

        def value(self):
            return self.o.current if self.o.shifting else 0

    class Sck:
        def __init__(self, outer):
            self.o = outer
            self.level = 0

        def value(self, v):
            o = self.o
            if self.level == 0 and v == 1:
                if not o.shifting:
                    o.shifting, o.n = True, 0
                raw = o.counts & 0xFFFFFF
                o.current = (raw >> (23 - o.n)) & 1 if o.n < 24 else 1
                o.n += 1
            elif self.level == 1 and v == 0:
                o.pulses += 1
                if o.n == 25:
                    o.shifting = False
            self.level = v


def test_hx711_reads_keeps_tare_in_nvs_and_does_not_tare_at_boot(board):
    import esp32
    from boucle_fw.drivers.hx711 import Hx711
    from boucle_fw.hw.system import Nvs, Settings

    pins = Hx711Pins(-12000)
    scale = Hx711(19, 18, samples=3, scale=100.0, zero_track_g=0,
                  store=Settings(Nvs(esp32)), pins=(Hx711Pins.Dout(pins), Hx711Pins.Sck(pins)))
    assert scale.counts() == -12000 and pins.pulses == 3 * 25  # 24 bits + gain pulse
    assert scale.tare() == {"tare_counts": -12000}
    pins.counts = -12000 + 100 * 2500
    assert scale.calibrate({"known_g": 5000}) == {"scale": 50.0}
    # reboot with a full bin: the saved tare stands, nothing is zeroed
    pins.counts = -12000 + 50 * 12840
    again = Hx711(19, 18, samples=3, scale=999.0, zero_track_g=0, store=Settings(Nvs(esp32)),
                  pins=(Hx711Pins.Dout(pins), Hx711Pins.Sck(pins)))
    assert again.read() == {"weight_g": 12840}


class Vl53Bus:
    """I2C registers of a VL53L0X that ranges `mm` on each single shot."""

    def __init__(self, mm):
        self.mm = mm
        self.regs = {0xC0: 0xEE, 0x91: 0x3C, 0x13: 0}
        self.writes = []

    def writeto_mem(self, addr, reg, data):
        self.writes.append((reg, data[0]))
        self.regs[reg] = data[0]
        if reg == 0x00 and data[0] == 0x01 and self.writes[-2:-1] == [(0x80, 0x00)]:
            self.regs[0x00] = 0  # started: the start bit clears
            self.regs[0x13] = 0x04  # range ready
        if reg == 0x0B:
            self.regs[0x13] = 0

    def readfrom_mem(self, addr, reg, n):
        if reg == 0x14 + 10:
            return bytes((self.mm >> 8, self.mm & 0xFF))
        return bytes((self.regs.get(reg, 0),))


def test_vl53l0x_single_shots_to_fill_level(board):
    from boucle_fw.drivers.vl53l0x import Vl53l0x
    bus = Vl53Bus(550)
    tof = Vl53l0x(21, 22, samples=3, empty_mm=1000, full_mm=100, i2c=bus)
    assert tof.stop == 0x3C
    assert tof.read() == {"fill_pct": 50.0}
    bus.mm = 8190  # nothing in range
    assert tof.read() == {}
    with pytest.raises(OSError, match="no VL53L0X"):
        Vl53l0x(21, 22, i2c=_NoDevice())


class _NoDevice:
    def readfrom_mem(self, addr, reg, n):
        return b"\x00"
