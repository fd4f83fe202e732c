# The water type end to end on the device side: descriptor, config, driver arithmetic,
# counting into integer litres, the device loop, discovery. CPython and MicroPython.
import json

from boucle_fw import config, discovery, protocol, sensors
from boucle_fw.accounting import CounterStore, EnergyCounter
from boucle_fw.buffer import ReadingBuffer
from boucle_fw.device import Device
from boucle_fw.drivers import water
from boucle_fw.timebase import Timebase

try:
    from tests.firmware.logic.mpcompat import raises
    from tests.firmware.logic.test_device_logic import Cell, MemoryLink, Ticks
except ImportError:
    from mpcompat import raises
    from test_device_logic import Cell, MemoryLink, Ticks


class Clock:
    def __init__(self):
        self.t = 0

    def ticks_ms(self):
        return self.t

    def ticks_diff(self, a, b):
        return a - b


class Pin:
    IN = 1
    PULL_UP = 2
    IRQ_FALLING = 4
    made = []  # noqa: RUF012 (the pins a driver made, newest last)

    def __init__(self, n, mode=None, pull=None):
        self.n = n
        self.handler = None
        Pin.made.append(self)

    def irq(self, handler, trigger=None):
        self.handler = handler


class Machine:
    Pin = Pin


def _meter(lpp=10, store=None):
    clock = Clock()
    m = water.WaterMeter(26, lpp, 50, store, Machine, clock)
    return m, clock, Pin.made[-1]


def _pulse(clock, pin, at_ms):
    clock.t = at_ms
    pin.handler(pin)


def test_water_pulse_profile_is_a_valid_water_config():
    cfg = config.make_config("lab-water", "w", "p", "b", 1883, "lab-water", "x", None, "water-pulse")
    assert cfg["sensors"][0]["type"] == "water_pulse"
    assert config.profiles()["water-pulse"]["kind"] == "water"
    assert cfg["water"] == {"persist_l": 50, "persist_s": 900}
    assert sensors.kind_of("water_pulse") == "water"
    bad = dict(cfg, sensors=[{"type": "water_pulse", "pin": 7, "litres_per_pulse": 0}])
    errors = config.validate(bad)
    assert "sensors[0].pin: GPIO7 is wired to the SPI flash — use another GPIO" in errors
    assert "sensors[0].litres_per_pulse: 0 is out of range — use a value from 0.001 to 1000" in errors
    mixed = dict(cfg, sensors=cfg["sensors"] + [{"type": "pulse", "pin": 27, "pulses_per_kwh": 1000}])
    assert "sensors: mixes water and energy sensors — use one device (and one device id) per kind" \
        in config.validate(mixed)
    assert "water.persist_l: 0 is out of range — use a value from 1 to 100000" in \
        config.validate(dict(cfg, water={"persist_l": 0}))


def test_water_fields_are_on_the_wire_with_their_decimals():
    assert ("water_l", None) in protocol.FIELDS and ("flow_lpm", 2) in protocol.FIELDS
    text = protocol.encode_reading({"seq": 1, "ts": 1767225600, "water_l": 1234, "flow_lpm": 12.3456})
    assert text == '{"seq":1,"ts":1767225600,"water_l":1234,"flow_lpm":12.35}'


def test_litres_are_counted_exactly_from_any_pulse_weight():
    c = EnergyCounter(0)
    for _ in range(10):
        c.add_pulses_ml(1, 250)  # a 0.25 L/pulse meter
    assert c.total_wh == 2 and c.rem_pulses == 500
    c.add_pulses_ml(2, 250)
    assert c.total_wh == 3 and c.rem_pulses == 0
    c.add_pulses_ml(7, 10000)  # 10 L/pulse
    assert c.total_wh == 73
    assert water.ml_per_pulse(0.1) == 100 and water.ml_per_pulse(10) == 10000


def test_water_meter_debounces_a_reed_contact_and_reads_flow():
    m, clock, pin = _meter(lpp=10)
    for t in (0, 3, 7, 60000, 60010, 120000):  # bounces 3 and 10 ms after a closing
        _pulse(clock, pin, t)
    clock.t = 120000
    r = m.read()
    assert r["pulses"] == 3 and r["ml_per_pulse"] == 10000
    assert abs(r["flow_lpm"] - 10.0) < 1e-9  # 10 L a minute
    clock.t = 300000  # three minutes without a pulse: the flow decays
    r = m.read()
    assert r["pulses"] == 0 and abs(r["flow_lpm"] - 10000 * 60.0 / 180000) < 1e-9


def test_water_meter_calibration_sets_the_pulse_weight_from_a_known_volume():
    store = Settings()
    m, clock, pin = _meter(lpp=1, store=store)
    assert m.calibrate({"point": 0}) == {"pulses": 0}
    for i in range(40):
        _pulse(clock, pin, 1000 * (i + 1))
    out = m.calibrate({"point": 1, "litres": 100})
    assert out == {"pulses": 40, "litres_per_pulse": 2.5}
    assert store.get("water_ml_per_pulse") == 2500
    again, _, _ = _meter(lpp=1, store=store)  # after a reboot: the calibrated weight
    assert again.ml == 2500
    assert raises(ValueError, water.calibrated_ml_per_pulse, 100, 0)


class Settings:
    def __init__(self):
        self.data = {}

    def get(self, k):
        return self.data.get(k)

    def set(self, k, v):
        self.data[k] = v


def test_a_water_device_sends_its_litre_counter_and_keeps_it_across_a_reboot():
    rtc, nvs = Cell(), Cell()
    m, clock, pin = _meter(lpp=1)
    ticks = Ticks()
    cfg = config.make_config("lab-water", "w", "p", "b", 1883, "lab-water", "x", None, "water-pulse")
    store = CounterStore(rtc, nvs, 50, 900)
    d = Device(cfg, 1, Timebase(ticks), MemoryLink(), ReadingBuffer(100, 16, 8, None), [("water_pulse", m)],
               store.restore(), store, None, None, "0.1.0")
    d.tb.sync(1767225600)
    for minute in range(3):
        for i in range(12):
            _pulse(clock, pin, minute * 60000 + i * 5000)
        d.cycle()
        ticks.t += 60000
    got = [r for _, r in d.link.telemetry()]
    assert [r["water_l"] for r in got] == [12, 24, 36]
    assert "energy_wh" not in got[0] and got[0]["flow_lpm"] == 12.0
    for i in range(5):
        _pulse(clock, pin, 200000 + i * 5000)
    d.shutdown()  # the pulses since the last reading are counted, saved exactly
    assert CounterStore(Cell(), nvs, 50, 900).restore().total_wh == 41


def test_water_discovery_messages_are_home_assistant_water_sensors():
    msgs = discovery.messages("lab-water", "boucle/v1/lab-water/telemetry", "boucle/v1/lab-water/status",
                              ["water_pulse"], "0.1.0")
    bodies = [json.loads(p) for _, p in msgs]
    assert [b["name"] for b in bodies] == ["water_l", "flow_lpm"]
    assert bodies[0]["device_class"] == "water" and bodies[0]["unit_of_measurement"] == "L"
    assert bodies[0]["state_class"] == "total_increasing"
    assert bodies[1]["device_class"] == "volume_flow_rate" and bodies[1]["unit_of_measurement"] == "L/min"
