"""`boucle calibrate` against a real Mosquitto and the firmware's own command handler.

The "device" here runs boucle_fw.commands.CommandHandler with the firmware's pure
calibration logic (hx711.Scale, ct.calibration_point); only the ADC counts, which
come from hardware, are simulated, and they change when the technician acts.
"""

from __future__ import annotations

import json
import threading

import paho.mqtt.client as mqtt
import pytest
from boucle_fw.commands import CommandHandler
from boucle_fw.drivers.ct import calibration_point
from boucle_fw.drivers.hx711 import Scale

from boucle.cli import main
from boucle.registry import load_registry
from workshop import calibrate

PREFIX = "boucle/v1"


class BenchDevice:
    """A device answering commands on its cmd topic; `counts` is what its ADC reads now."""

    def __init__(self, port: int, device_id: str, handlers: dict):
        self.device_id = device_id
        self.handler = CommandHandler(handlers)
        self.received: list[dict] = []
        ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv311)
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(f"{PREFIX}/{device_id}/cmd", qos=1)
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert ready.wait(10)

    def _on_message(self, client, userdata, msg):
        self.received.append(json.loads(msg.payload))
        client.publish(f"{PREFIX}/{self.device_id}/cmd/ack", self.handler.handle(msg.payload), qos=1)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def env(mosquitto, registry_copy, monkeypatch):
    monkeypatch.setenv("BOUCLE_MQTT_HOST", "127.0.0.1")
    monkeypatch.setenv("BOUCLE_MQTT_PORT", str(mosquitto.port))
    monkeypatch.setenv("BOUCLE_REGISTRY", str(registry_copy))
    return mosquitto


def test_scale_tare_and_known_weight(env, registry_copy, monkeypatch, capsys):
    adc = {"counts": 81_234}  # empty bin on the load cell
    scale = Scale(tare=0, scale=420.0)

    def tare(args):
        scale.tare(adc["counts"])
        return {"tare_counts": scale.tare_counts}

    def cal(args):
        return {"scale": scale.calibrate(adc["counts"], float(args["known_g"]))}

    device = BenchDevice(env.port, "ecully-school-bin-residual", {"tare": tare, "calibrate": cal})
    actions = iter([lambda: None, lambda: adc.update(counts=81_234 + 4_315_000)])  # 10 kg at 431.5 counts/g
    monkeypatch.setattr(calibrate, "ask", lambda prompt: next(actions)())
    assert main(["calibrate", "ecully-school-bin-residual", "--known-g", "10000"]) == 0
    device.close()
    assert [m["cmd"] for m in device.received] == ["tare", "calibrate"]
    assert scale.scale == pytest.approx(431.5) and scale.grams(adc["counts"]) == pytest.approx(10000)
    registered = load_registry(registry_copy).device("ecully-school-bin-residual").calibration
    assert registered == {"tare_counts": 81_234.0, "scale": pytest.approx(431.5)}
    assert "Empty the scale" in capsys.readouterr().out


def test_ct_clamp_known_load_in_watts(env, registry_copy, monkeypatch):
    adc = {"rms": 3.0}
    state = {"cal": [[0, 0.0], [1241, 30.0]]}

    def cal(args):
        state["cal"] = calibration_point(state["cal"], int(args["point"]), adc["rms"], float(args["amps"]))
        return {"calibration": state["cal"]}

    device = BenchDevice(env.port, "zim-injection-grid", {"calibrate": cal})
    actions = iter([lambda: None, lambda: adc.update(rms=398.0)])  # a 2300 W kettle switched on
    monkeypatch.setattr(calibrate, "ask", lambda prompt: next(actions)())
    assert main(["calibrate", "zim-injection-grid", "--known-w", "2300"]) == 0
    device.close()
    assert state["cal"] == [[3.0, 0.0], [398.0, 10.0]]
    assert load_registry(registry_copy).device("zim-injection-grid").calibration == {
        "ct_counts_0": 3.0, "ct_amps_0": 0.0, "ct_counts_1": 398.0, "ct_amps_1": 10.0}


class Contact:
    """The meter's reed contact on the pin the firmware's WaterMeter listens to."""

    IN, PULL_UP, IRQ_FALLING = 1, 2, 4

    def __init__(self, n, mode=None, pull=None):
        Contact.last = self

    def irq(self, handler, trigger=None):
        self.handler = handler


class Clock:
    t = 0

    def ticks_ms(self):
        return self.t

    def ticks_diff(self, a, b):
        return a - b


def test_water_meter_pulse_weight_from_a_known_volume(env, registry_copy, monkeypatch, capsys):
    from boucle_fw.drivers.water import WaterMeter

    clock, machine = Clock(), type("machine", (), {"Pin": Contact})
    meter = WaterMeter(26, 1, 50, None, machine, clock)
    pin = Contact.last

    def draw(litres_on_the_dial):  # the real pulse weight is 10 L: one pulse per 10 L drawn
        for _ in range(litres_on_the_dial // 10):
            clock.t += 2000
            pin.handler(pin)

    device = BenchDevice(env.port, "ecully-fablab-water", {"calibrate": meter.calibrate})
    actions = iter([lambda: None, lambda: draw(200)])
    monkeypatch.setattr(calibrate, "ask", lambda prompt: next(actions)())
    assert main(["calibrate", "ecully-fablab-water", "--known-l", "200"]) == 0
    device.close()
    assert [m["args"] for m in device.received] == [{"point": 0}, {"point": 1, "litres": 200}]
    assert meter.ml == 10_000 and meter.read()["ml_per_pulse"] == 10_000
    assert load_registry(registry_copy).device("ecully-fablab-water").calibration == {
        "pulses": 20.0, "litres_per_pulse": 10.0}
    assert "Read the meter's dial" in capsys.readouterr().out
    assert main(["calibrate", "ecully-fablab-water", "--yes"]) == 2
    assert "--known-l" in capsys.readouterr().err


def test_device_refusal_is_reported_and_registry_unchanged(env, registry_copy, capsys):
    def cal(args):
        raise ValueError("no change from the tare — is the weight on the scale?")

    device = BenchDevice(env.port, "ecully-school-bin-residual", {"tare": lambda a: {"tare_counts": 5}, "calibrate": cal})
    before = registry_copy.read_bytes()
    assert main(["calibrate", "ecully-school-bin-residual", "--known-g", "500", "--yes"]) == 2
    device.close()
    assert registry_copy.read_bytes() == before
    assert "the device refused calibrate: no change from the tare" in capsys.readouterr().err


def test_silent_device_times_out_with_advice(env, registry_copy, capsys):
    before = registry_copy.read_bytes()
    assert main(["calibrate", "ecully-school-bin-residual", "--known-g", "500", "--yes", "--timeout", "0.5"]) == 2
    assert registry_copy.read_bytes() == before
    assert "no answer to tare within 0.5 s" in capsys.readouterr().err


def test_profiles_without_calibration_are_refused(env, capsys):
    assert main(["calibrate", "ecully-joinery-grid", "--yes"]) == 2
    assert "calibration applies to energy-ct, waste-scale, water-pulse devices" in capsys.readouterr().err
    assert main(["calibrate", "ecully-school-bin-residual", "--yes"]) == 2
    assert "--known-g" in capsys.readouterr().err
