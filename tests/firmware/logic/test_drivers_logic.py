# Sensor arithmetic (no hardware): CPython and MicroPython.
import math

from boucle_fw.drivers import ct, hx711, pulse, pzem, ultrasonic


class FakeUart:
    """The PZEM side of the wire: answers requests from a table of meters."""

    def __init__(self, meters):
        self.meters = meters  # address -> register list (10 ints)
        self.out = b""
        self.requests = []

    def any(self):
        return len(self.out)

    def read(self, n=None):
        data = self.out if n is None else self.out[:n]
        self.out = self.out[len(data):]
        return data or None

    def write(self, req):
        self.requests.append(bytes(req))
        addr, fn = req[0], req[1]
        if addr not in self.meters:
            return
        if fn == pzem.READ_INPUT:
            regs = self.meters[addr]
            body = bytearray((addr, 4, 20))
            for r in regs:
                body.extend(bytes((r >> 8, r & 0xFF)))
            self.out = pzem.frame(bytes(body))
        elif fn == pzem.RESET_ENERGY:
            self.meters[addr][5] = 0
            self.meters[addr][6] = 0
            self.out = pzem.frame(bytes((addr, 0x42)))


def _regs(volts, amps, watts, wh, pf):
    a = int(amps * 1000)
    w = int(watts * 10)
    return [int(volts * 10), a & 0xFFFF, a >> 16, w & 0xFFFF, w >> 16, wh & 0xFFFF, wh >> 16,
            500, int(pf * 100), 0]


def test_modbus_crc_known_frame():
    # read input registers 0..9 of address 1: the documented request 01 04 00 00 00 0A 70 0D
    assert pzem.read_request(1) == bytes((0x01, 0x04, 0x00, 0x00, 0x00, 0x0A, 0x70, 0x0D))
    assert pzem.reset_request(1) == bytes((0x01, 0x42, 0x80, 0x11))


def test_pzem_reads_three_meters_and_follows_resets():
    meters = {1: _regs(231.2, 10.412, 2310.5, 70000, 0.97),
              2: _regs(229.8, 2.0, 400.0, 100000, 0.87),
              3: _regs(230.0, 0.0, 0.0, 5, 0.0)}
    uart = FakeUart(meters)
    p = pzem.Pzem(addresses=(1, 2, 3), uart=uart)
    first = p.read()
    assert first["energy_delta_wh"] == 0  # baseline
    assert abs(first["power_w"] - 2710.5) < 0.01
    assert abs(first["current_a"] - 12.412) < 1e-6
    assert abs(first["voltage_v"] - 230.333) < 0.001
    meters[1][5] += 12
    meters[2][5] = 0xFFFF  # low word rolls into the high word
    meters[2][6] += 1
    second = p.read()
    # meter 2 went from 100000 to (hi+1)<<16 | 0xFFFF
    m2_before = 100000
    m2_after = ((100000 >> 16) + 1) << 16 | 0xFFFF
    assert second["energy_delta_wh"] == 12 + (m2_after - m2_before)
    p.reset_energy(3)
    meters[3][5] = 2
    assert p.read()["energy_delta_wh"] == 2


def test_pzem_errors_say_what_to_check():
    p = pzem.Pzem(addresses=(7,), uart=FakeUart({}))
    try:
        p.read()
    except pzem.ModbusError as e:
        assert "address 7" in str(e) and "wiring" in str(e)
    else:
        raise AssertionError("no error for a silent meter")
    good = pzem.frame(bytes((1, 4, 20)) + bytes(20))
    bad = good[:-1] + bytes(((good[-1] + 1) & 0xFF,))
    try:
        pzem.parse_measurement(bad, 1)
    except pzem.ModbusError as e:
        assert "CRC" in str(e)
    else:
        raise AssertionError("bad CRC accepted")


def _sine(amplitude, offset, n, cycles, noise=0):
    out = []
    for i in range(n):
        v = offset + amplitude * math.sin(2 * math.pi * cycles * i / n)
        out.append(int(v + 0.5) + ((i * 7919) % (2 * noise + 1) - noise if noise else 0))
    return out


def test_ct_rms_removes_offset_over_whole_cycles():
    s = _sine(1000, 1900, 400, 10)
    assert abs(ct.rms_counts(s) - 1000 / math.sqrt(2)) < 1.0
    # the offset does not matter
    assert abs(ct.rms_counts(_sine(1000, 2300, 400, 10)) - ct.rms_counts(s)) < 1.0


def test_ct_two_point_calibration_and_noise_floor():
    cal = [[3.0, 0.0], [1244.0, 30.0]]
    assert abs(ct.amps(624.0, cal) - 15.0) < 0.05
    idle = ct.rms_counts(_sine(0, 2048, 400, 10, noise=3))
    assert ct.amps(idle, cal, noise_a=0.1) == 0.0
    new = ct.calibration_point(cal, 1, 700.0, 16.0)
    assert new == [[3.0, 0.0], [700.0, 16.0]]


class FakeTime:
    """time.ticks_us and friends; each reading takes 10 us."""

    def __init__(self):
        self.us = 0

    def ticks_us(self):
        self.us += 10
        return self.us

    def ticks_add(self, a, b):
        return a + b

    def ticks_diff(self, a, b):
        return a - b


class FakeAdc:
    def __init__(self, samples):
        self.samples = samples
        self.i = 0

    def read_u16(self):
        v = self.samples[self.i % len(self.samples)]
        self.i += 1
        return v << 4


def test_ct_clamp_reads_current_and_power():
    clamp = ct.CtClamp(34, 50, 2, 230.0, 1.0, 0.05, [[0, 0.0], [1241, 30.0]],
                       adc=FakeAdc(_sine(620, 2048, 80, 2)), time_mod=FakeTime())
    r = clamp.read()
    assert abs(r["current_a"] - 30.0 * (620 / math.sqrt(2)) / 1241) < 0.1
    assert abs(r["power_w"] - r["current_a"] * 230.0) < 1e-6
    saved = {}

    class Store:
        def set(self, k, v):
            saved[k] = v

    clamp.store = Store()
    # the load now is a known 12.0 A: it becomes calibration point 1
    clamp.calibrate({"point": 1, "amps": 12.0})
    assert saved["ct_calibration"][1][1] == 12.0
    assert abs(clamp.read()["current_a"] - 12.0) < 0.05


def test_pulse_timer_debounce_and_power():
    t = pulse.PulseTimer(1000, debounce_ms=20)
    assert t.edge(0) and not t.edge(5) and t.edge(3600)
    assert t.count == 2
    # 1 Wh per pulse, one pulse every 3.6 s: 1000 W
    assert abs(t.power_w(3600) - 1000.0) < 1e-6
    # no pulse for 36 s: at most 100 W now
    assert abs(t.power_w(3600 + 36000) - 100.0) < 1e-6


WRAP = 1 << 30  # time.ticks_ms() on the ESP32 wraps here (12.4 days)


def test_pulse_timer_counts_across_the_ticks_wrap():
    t = pulse.PulseTimer(1000, debounce_ms=5)
    assert t.edge(WRAP - 5) and t.edge(3)  # 8 ms apart across the wrap: a pulse, not bounce
    assert t.interval_ms == 8
    t = pulse.PulseTimer(1000, debounce_ms=20)
    start = WRAP - 10 * 3600
    for i in range(20):  # 1 kW: a pulse every 3.6 s, the wrap halfway through
        assert t.edge((start + i * 3600) % WRAP)
        assert not t.edge((start + i * 3600 + 4) % WRAP)  # bounce, also across it
    assert t.count == 20
    last = (start + 19 * 3600) % WRAP
    assert abs(t.power_w(last) - 1000.0) < 1e-3
    assert abs(t.power_w((last + 36000) % WRAP) - 100.0) < 1e-3


def test_pulse_power_stops_after_a_quiet_day_instead_of_wrapping_back():
    t = pulse.PulseTimer(1000)
    t.edge(WRAP - 1000)
    t.edge(WRAP - 1000 + 3600)
    day = 86400000
    assert t.power_w((WRAP - 1000 + 3600 + day - 1) % WRAP) > 0
    # a day and more without a pulse: off, even where ticks_diff would later wrap around
    # (6.2 days) and make the old interval look recent
    assert t.power_w((WRAP - 1000 + 3600 + day + 1) % WRAP) == 0.0
    assert t.power_w((WRAP - 1000 + 3600 + (1 << 29) + 5) % WRAP) == 0.0
    assert t.edge(12345) and t.interval_ms is None  # a new start, not a 6-day interval
    assert t.edge(12345 + 1800) and abs(t.power_w(12345 + 1800) - 2000.0) < 1e-3


def test_pcnt_count_modulo_its_limit_loses_no_pulse():
    # esp32.PCNT returns to 0 on reaching max (PCNT_LIMIT): 31990 -> 40 is 50 pulses
    lim = pulse.PCNT_LIMIT
    assert pulse.counter_delta(40, lim - 10, lim) == 50
    assert pulse.counter_delta(lim - 10, 40, lim) == lim - 50
    assert pulse.counter_delta(7, 7, lim) == 0
    assert pulse.counter_delta(2**40 + 3, 2**40 - 2) == 5  # machine.Counter: no wrap
    total = 0
    value = lim - 300
    for step in (100, 250, 31999, 1, 0, 500):  # counts between reads, wrapping twice
        before = value
        value = (value + step) % lim
        total += pulse.counter_delta(value, before, lim)
    assert total == 100 + 250 + 31999 + 1 + 0 + 500


def test_hx711_median_tare_scale_and_zero_tracking():
    assert hx711.median([5, 1, 900000, 3, 2]) == 3
    assert hx711.signed24(0xFFFFFF) == -1 and hx711.signed24(0x7FFFFF) == 8388607
    s = hx711.Scale(tare=10000, scale=420.0, zero_track_g=0)
    assert s.weight_g(10000 + 420 * 12840) == 12840
    assert s.weight_g(10000 - 420 * 120) == -120  # below tare is reported as measured
    s.calibrate(10000 + 2 * 420 * 1000, 1000)
    assert s.scale == 840.0
    z = hx711.Scale(tare=0, scale=100.0, zero_track_g=20)
    drift = 0
    for _ in range(40):  # empty bin drifting 0.5 g per reading
        drift += 50
        w = z.weight_g(drift)
    assert abs(w) <= 2
    loaded = z.weight_g(drift + 100 * 5000)
    assert 4990 <= loaded <= 5010  # a real load is not tracked away


def test_ultrasonic_speed_of_sound_and_fill():
    assert abs(ultrasonic.sound_mm_per_us(20) - 0.34342) < 1e-6
    # 1 m at 20 degC takes 5823.7 us there and back; at 0 degC the same echo reads shorter
    us = 2000 / ultrasonic.sound_mm_per_us(20)
    assert abs(ultrasonic.echo_to_mm(us, 20) - 1000) < 1e-3  # single-precision floats, as on the ESP32
    assert ultrasonic.echo_to_mm(us, 0) < 966
    assert ultrasonic.fill_pct(1000, 1000, 100) == 0.0
    assert ultrasonic.fill_pct(550, 1000, 100) == 50.0
    assert ultrasonic.fill_pct(50, 1000, 100) == 100.0
    assert ultrasonic.median_valid([-2, 5800, 5810, -2, 5790]) == 5800
    assert ultrasonic.median_valid([-2, -2]) is None
