# The device loop with an in-memory link: CPython and MicroPython.
import json

from boucle_fw import config, discovery
from boucle_fw.accounting import CounterStore
from boucle_fw.buffer import ReadingBuffer
from boucle_fw.device import Device
from boucle_fw.timebase import Timebase

try:
    from tests.firmware.logic.mpcompat import tmpdir
except ImportError:
    from mpcompat import tmpdir


class Ticks:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t


class MemoryLink:
    """A broker that can be down: keeps what it acknowledged."""

    def __init__(self):
        self.up = True
        self.connected = False
        self.messages = []

    def connect(self):
        self.connected = self.up
        return self.connected

    def publish(self, topic, payload, qos=0, retain=False):
        if not self.up:
            self.connected = False
            return False
        self.messages.append((topic, payload))
        return True

    def telemetry(self):
        out = []
        for topic, payload in self.messages:
            if topic.endswith("/telemetry"):
                body = json.loads(payload)
                for r in body["readings"]:
                    out.append((body["boot"], r))
        return out


class PowerSensor:
    def __init__(self, watts):
        self.watts = watts
        self.fail = False

    def read(self):
        if self.fail:
            raise OSError("no reply")
        return {"power_w": self.watts, "current_a": self.watts / 230.0}


class Cell:
    def __init__(self):
        self.data = None

    def get(self):
        return self.data

    def set(self, d):
        self.data = d


class Scale:
    def __init__(self):
        self.tared = 0

    def read(self):
        return {"weight_g": 1500}

    def tare(self, args):
        self.tared += 1
        return {"tare_counts": 42}


def _cfg(profile="energy-ct"):
    return config.make_config("ecully-fablab-grid", "w", "p", "b", 1883, "ecully-fablab-grid",
                              "x", None, profile, interval_s=60)


def _device(path=None, boot=3, sensor=None, profile="energy-ct"):
    ticks = Ticks()
    tb = Timebase(ticks)
    link = MemoryLink()
    buf = ReadingBuffer(500, 16, 8, path)
    store = CounterStore(Cell(), Cell(), 10, 900)
    kind = "ct" if profile == "energy-ct" else "hx711"
    d = Device(_cfg(profile), boot, tb, link, buf, [(kind, sensor or PowerSensor(600.0))],
               store.restore(), store, None, None, "0.1.0")
    return d, ticks, link


def test_outage_then_replay_in_order_with_energy_counted():
    d, ticks, link = _device(tmpdir() + "/buf")
    d.tb.sync(1767225600)
    for i in range(30):
        link.up = not (10 <= i < 25)
        d.cycle()
        ticks.t += 60000
    got = link.telemetry()
    assert [r["seq"] for _, r in got] == list(range(30))
    assert [r["ts"] for _, r in got] == [1767225600 + 60 * i for i in range(30)]
    # 600 W for 29 minutes = 290 Wh, counted at 1 Wh resolution
    assert got[-1][1]["energy_wh"] == 290
    energies = [r["energy_wh"] for _, r in got]
    assert energies == sorted(energies)


class Pulses:
    """An S0 input: pulses counted since the last read (1 Wh each at 1000/kWh)."""

    def __init__(self):
        self.count = 0

    def read(self):
        n, self.count = self.count, 0
        return {"pulses": n, "pulses_per_kwh": 1000, "power_w": 0.0}


def test_orderly_stop_counts_the_pulses_since_the_last_reading():
    rtc, nvs = Cell(), Cell()
    meter = Pulses()
    ticks = Ticks()
    store = CounterStore(rtc, nvs, 100, 900)
    d = Device(_cfg("energy-pulse"), 3, Timebase(ticks), MemoryLink(), ReadingBuffer(500, 16, 8, None),
               [("pulse", meter)], store.restore(), store, None, None, "0.1.0")
    d.tb.sync(1767225600)
    meter.count = 40
    d.cycle()
    ticks.t += 30000
    meter.count = 17  # after the last reading, before the reboot command's reset
    d.shutdown()
    again = CounterStore(Cell(), nvs, 100, 900).restore()  # RTC lost too: NVS is exact
    assert d.link.telemetry()[-1][1]["energy_wh"] == 40
    assert again.total_wh == 57


class TightBuffer(ReadingBuffer):
    """A buffer on a fragmented heap: looking at more than 12 readings runs out of memory."""

    def peek(self, n):
        if n > 12:
            raise MemoryError("memory allocation failed, allocating 6459 bytes")
        return ReadingBuffer.peek(self, n)


def test_flush_sends_smaller_batches_when_the_heap_is_short():
    ticks = Ticks()
    link = MemoryLink()
    store = CounterStore(Cell(), Cell(), 10, 900)
    d = Device(_cfg(), 3, Timebase(ticks), link, TightBuffer(500, 16, 8, None), [("ct", PowerSensor(600.0))],
               store.restore(), store, None, None, "0.1.0")
    d.tb.sync(1767225600)
    link.up = False
    for _ in range(40):
        d.cycle()
        ticks.t += 60000
    link.up = True
    d.cycle()  # 41 readings wait: batches of 12 (48 halved twice), not a crash
    assert [r["seq"] for _, r in link.telemetry()] == list(range(41))
    sizes = [len(json.loads(p)["readings"]) for t, p in link.messages if t.endswith("/telemetry")]
    assert sizes == [12, 12, 12, 5]


def test_unsynced_readings_wait_then_go_out_stamped():
    d, ticks, link = _device()
    for _ in range(3):
        d.cycle()
        ticks.t += 60000
    assert link.telemetry() == []
    d.tb.sync(1767225600)
    d.on_clock_synced()
    d.cycle()
    got = link.telemetry()
    assert [r["ts"] for _, r in got] == [1767225420, 1767225480, 1767225540, 1767225600]


def test_failing_sensor_is_counted_not_fatal():
    sensor = PowerSensor(100.0)
    d, _ticks, link = _device(sensor=sensor)
    d.tb.sync(1767225600)
    sensor.fail = True
    assert d.cycle() == (False, True)
    assert d.sensor_errors == 1
    sensor.fail = False
    assert d.cycle() == (True, True)
    health = [json.loads(p) for t, p in link.messages if t.endswith("/health")]
    assert health[0]["buffer_depth"] == 0 and health[0]["boot"] == 3
    assert health[0]["error"] == "ct: no reply" and health[0]["sensor_errors"] == 1
    d.publish_health()
    assert "error" not in json.loads(link.messages[-1][1])  # reported once


def test_commands_through_the_device():
    scale = Scale()
    d, _ticks, _link = _device(sensor=scale, profile="waste-scale")
    ack = json.loads(d.on_command(b'{"id":"a","cmd":"tare"}'))
    assert ack["ok"] and scale.tared == 1
    ack = json.loads(d.on_command(b'{"id":"b","cmd":"set_interval","args":{"seconds":300}}'))
    assert ack["ok"] and d.interval_s == 300 and d.scheduler.period("sample") == 300000
    ack = json.loads(d.on_command(b'{"id":"c","cmd":"calibrate","args":{"known_g":1000}}'))
    assert not ack["ok"] and "calibrate" in ack["error"]
    ack = json.loads(d.on_command(b'{"id":"d","cmd":"ota","args":{"url":"ftp://x"}}'))
    assert not ack["ok"] and d.ota_request is None
    ack = json.loads(d.on_command(b'{"id":"e","cmd":"reboot"}'))
    assert ack["ok"] and d.reboot_requested


def test_home_assistant_discovery_messages():
    msgs = discovery.messages("ecully-fablab-grid", "boucle/v1/ecully-fablab-grid/telemetry",
                              "boucle/v1/ecully-fablab-grid/status", ["pzem"], "0.1.0")
    topics = [t for t, _ in msgs]
    assert "homeassistant/sensor/ecully-fablab-grid_energy_wh/config" in topics
    energy = json.loads(msgs[0][1])
    assert energy["state_class"] == "total_increasing" and energy["unit_of_measurement"] == "Wh"
    assert energy["value_template"].startswith("{{ value_json.readings[-1].energy_wh")


class Bin:
    """A load cell whose weight the test sets."""

    def __init__(self):
        self.weight_g = 0

    def read(self):
        return {"weight_g": self.weight_g}


def _bin():
    ticks = Ticks()
    cfg = config.make_config("ecully-fablab-bin-residual", "w", "p", "b", 1883, "ecully-fablab-bin-residual",
                             "x", None, "waste-scale", interval_s=900)
    scale = Bin()
    d = Device(cfg, 3, Timebase(ticks), MemoryLink(), ReadingBuffer(500, 16, 8, None), [("hx711", scale)],
               None, None, None, None, "0.1.0")
    d.tb.sync(1767225600)
    return d, ticks, scale


def _take(d, ticks, scale, steps):
    """(seconds from now, weight, "sample" or "watch") in order; what each watch returned."""
    t0, out = ticks.t, []
    for s, w, what in steps:
        ticks.t = t0 + s * 1000
        scale.weight_g = w
        out.append(d.sample() is not None if what == "sample" else d.watch())
    return out


def test_a_bin_reports_an_emptying_at_once_with_the_reading_before_it():
    d, ticks, scale = _bin()
    assert d.scheduler.period("watch") == 60000 and _device()[0].scheduler.period("watch") is None
    got = _take(d, ticks, scale, [(0, 1000, "sample"), (60, 1200, "watch"), (120, 1500, "watch"),
                                  (180, 100, "watch"), (240, 300, "watch"), (900, 400, "sample")])
    assert got == [True, False, False, True, False, True]
    d.flush()
    readings = [r for _, r in d.link.telemetry()]
    assert [r["seq"] for r in readings] == [0, 1, 2, 3]
    assert [(r["ts"] - 1767225600, r["weight_g"]) for r in readings] == [(0, 1000), (120, 1500), (180, 100), (900, 400)]


def test_an_emptying_seen_at_a_report_brings_the_watched_reading_before_it():
    d, ticks, scale = _bin()
    got = _take(d, ticks, scale, [(0, 5000, "sample"), (840, 9000, "watch"), (900, 50, "sample"),
                                  (960, 40000, "watch"), (1020, 200, "watch"), (1800, 3000, "sample")])
    # 40 kg to 200 g is an emptying (at most 10 % of the weight before); 200 g to 3 kg is not
    assert got == [True, False, True, False, True, True]
    d.flush()
    readings = [(r["ts"] - 1767225600, r["weight_g"]) for _, r in d.link.telemetry()]
    assert readings == [(0, 5000), (840, 9000), (900, 50), (960, 40000), (1020, 200), (1800, 3000)]


def test_small_falls_are_not_emptyings():
    from boucle_fw.kinds.waste import emptied
    assert not emptied({"weight_g": 1000}, {"weight_g": 950})      # within the 100 g band
    assert not emptied({"weight_g": 20000}, {"weight_g": 5000})    # a bag taken out, not a collection
    assert emptied({"weight_g": 20000}, {"weight_g": 1900})
    assert emptied({"weight_g": 450}, {"weight_g": 0})
    assert emptied({"fill_pct": 80.0}, {"fill_pct": 12.0})
    assert not emptied({"fill_pct": 80.0}, {"fill_pct": 40.0})
    assert not emptied({"weight_g": 20000}, {"fill_pct": 0.0})    # nothing to compare
