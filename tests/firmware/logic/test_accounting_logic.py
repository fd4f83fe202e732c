# Integer energy accounting: runs on CPython and on MicroPython.
from boucle_fw.accounting import CounterStore, EnergyCounter


class Cell:
    """A byte store (RTC memory or an NVS blob)."""

    def __init__(self):
        self.data = None
        self.writes = 0

    def get(self):
        return self.data

    def set(self, data):
        self.data = bytes(data)
        self.writes += 1


def test_power_integration_keeps_fractions_exactly():
    c = EnergyCounter(1834512)
    # 0.9 Wh per step would vanish in single-precision floats at this total
    for _ in range(1000):
        c.add_power(3240, 1000)  # 3240 W for 1 s = 0.9 Wh
    assert c.total_wh == 1834512 + 900
    assert c.rem_mwms == 0


def test_power_remainder_is_carried():
    c = EnergyCounter()
    c.add_power(1, 3599999)
    assert c.total_wh == 0
    c.add_power(0.001, 1000)
    assert c.total_wh == 1 and c.rem_mwms == 0


def test_small_loads_are_not_rounded_away():
    c = EnergyCounter()
    for _ in range(60 * 24):
        c.add_power(12.3, 60000)  # 12.3 W for a day
    assert c.total_wh == 295  # 295.2 Wh


def test_negative_power_is_not_counted():
    c = EnergyCounter(5)
    c.add_power(-400.0, 60000)
    assert c.total_wh == 5


def test_pulses_with_non_dividing_rate():
    c = EnergyCounter()
    for _ in range(800):
        c.add_pulses(1, 800)  # 800 pulses/kWh: 1.25 Wh each
    assert c.total_wh == 1000 and c.rem_pulses == 0
    c.add_pulses(3, 3)  # 333.33 Wh each
    assert c.total_wh == 2000
    c.add_pulses(1, 3)
    assert c.total_wh == 2333


def test_meter_register_and_reset():
    c = EnergyCounter(100)
    c.add_meter(5000)  # baseline
    assert c.total_wh == 100
    c.add_meter(5010)
    assert c.total_wh == 110
    c.add_meter(3)  # meter was reset: its new value counts in full
    assert c.total_wh == 113


def test_state_round_trip_and_garbage():
    c = EnergyCounter(2 ** 33)
    c.add_power(1234, 777)
    c.add_pulses(7, 1000)
    c.add_meter(42)
    d = EnergyCounter.from_bytes(c.to_bytes())
    assert (d.total_wh, d.rem_mwms, d.rem_pulses, d.last_meter_wh) == \
        (c.total_wh, c.rem_mwms, c.rem_pulses, 42)
    blob = bytearray(c.to_bytes())
    blob[5] ^= 1
    assert EnergyCounter.from_bytes(bytes(blob)) is None
    assert EnergyCounter.from_bytes(b"\0" * 8) is None
    assert EnergyCounter.from_bytes(None) is None


def test_store_rtc_every_cycle_nvs_rarely():
    rtc, nvs = Cell(), Cell()
    store = CounterStore(rtc, nvs, persist_wh=10, persist_s=900)
    c = store.restore()
    assert store.restored_from == "new" and c.total_wh == 0
    now = 0
    for _ in range(100):  # 100 cycles of 60 s at 300 W: 500 Wh
        now += 60
        c.add_power(300, 60000)
        store.cycle(c, now)
    assert rtc.writes == 100
    assert 40 <= nvs.writes <= 52  # every 10 Wh (+ first), far fewer than cycles


def test_store_time_based_save():
    rtc, nvs = Cell(), Cell()
    store = CounterStore(rtc, nvs, persist_wh=1000, persist_s=900)
    c = store.restore()
    store.cycle(c, 0)
    for t in range(60, 1800 + 1, 60):
        c.add_power(10, 60000)
        store.cycle(c, t)
    assert nvs.writes == 3  # at 0, 900 and 1800 s


def test_soft_reset_restores_exactly_from_rtc():
    rtc, nvs = Cell(), Cell()
    store = CounterStore(rtc, nvs, persist_wh=10)
    c = store.restore()
    for t in range(1, 50):
        c.add_power(777, 60000)
        store.cycle(c, t * 60)
    again = CounterStore(rtc, nvs, persist_wh=10).restore()
    assert (again.total_wh, again.rem_mwms) == (c.total_wh, c.rem_mwms)


def test_power_cut_never_goes_below_a_published_value():
    rtc, nvs = Cell(), Cell()
    store = CounterStore(rtc, nvs, persist_wh=10)
    c = store.restore()
    published = []
    for t in range(1, 200):
        c.add_power(431, 60000)
        store.cycle(c, t * 60)
        published.append(c.total_wh)  # the reading leaves after cycle()
    rtc.data = None  # power cut: RTC memory lost
    store2 = CounterStore(rtc, nvs, persist_wh=10)
    after = store2.restore()
    assert store2.restored_from == "nvs"
    assert after.total_wh >= max(published)
    assert after.total_wh - max(published) <= 10


def test_orderly_shutdown_is_exact_even_without_rtc():
    rtc, nvs = Cell(), Cell()
    store = CounterStore(rtc, nvs, persist_wh=10)
    c = store.restore()
    c.add_power(500, 90000)
    store.cycle(c, 60)
    store.shutdown(c, 61)
    rtc.data = None
    after = CounterStore(rtc, nvs, persist_wh=10).restore()
    assert (after.total_wh, after.rem_mwms) == (c.total_wh, c.rem_mwms)
