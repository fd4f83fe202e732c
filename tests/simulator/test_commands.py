"""Commands on {prefix}/{device}/cmd go through the firmware's CommandHandler: the fleet
answers on cmd/ack and the device does what was asked."""

import json
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from boucle.registry import load_registry
from boucle.settings import SimulatorSettings, load_settings
from simulator.fleet import Fleet
from simulator.ledger import Ledger
from simulator.profiles import load_profiles
from simulator.run import run_simulation
from tests.conftest import minute_registry
from tests.simulator.capture import START

BIN = "ecully-fablab-bin-residual"
GRID = "ecully-fablab-grid"


def command(fleet, device, cmd, args=None, cmd_id=None):
    _topic, ack = fleet.command(device, json.dumps({"id": cmd_id or cmd, "cmd": cmd, "args": args or {}}).encode())
    return json.loads(ack)


def telemetry(fleet, device):
    return [json.loads(p) for t, p in fleet.payloads(1) if t == f"boucle/v1/{device}/telemetry"]


def test_set_interval_tare_reboot_and_refusals():
    fleet = Fleet(load_registry(minute_registry()), load_profiles(), 1, Ledger(None), {}, start_ts=START)
    fleet.step(START)
    list(fleet.payloads(1))

    assert command(fleet, GRID, "set_interval", {"seconds": 300}) == {
        "v": 1, "id": "set_interval", "cmd": "set_interval", "ok": True, "result": {"interval_s": 300}}
    sent = []
    for minute in range(1, 11):
        fleet.step(START + 60 * minute)
        sent += telemetry(fleet, GRID)
    # as the firmware reschedules: the next reading one new period after the command
    assert [b["readings"][0]["ts"] - START for b in sent] == [300, 600]
    refused = command(fleet, GRID, "set_interval", {"seconds": 90}, cmd_id="odd")
    assert not refused["ok"] and "multiple" in refused["error"]

    fleet.devices[BIN].content_kg = 12.0
    tared = command(fleet, BIN, "tare")
    assert tared["ok"] and abs(tared["result"]["tare_g"] - 12_000) < 200
    fleet.step(START + 660)
    (body,) = telemetry(fleet, BIN)
    assert abs(body["readings"][0]["weight_g"]) < 100  # the scale reads zero again
    assert "hx711" in command(fleet, GRID, "tare")["error"]
    assert command(fleet, GRID, "calibrate")["error"] == "calibrate is not available on this device"

    ack = command(fleet, BIN, "reboot", cmd_id="r1")
    assert ack["ok"] and command(fleet, BIN, "reboot", cmd_id="r1") == ack  # a repeat is not run twice
    fleet.step(START + 720)
    (body,) = telemetry(fleet, BIN)
    assert (body["boot"], body["readings"][0]["seq"]) == (2, 0)
    fleet.step(START + 780)
    (body,) = telemetry(fleet, BIN)
    assert body["boot"] == 2  # rebooted once, not twice
    assert fleet.command("no-such-device", b"{}") is None


def test_a_command_over_mqtt_is_acknowledged_and_done(tmp_path, mosquitto):
    stop = threading.Event()
    sim = load_settings(SimulatorSettings, {}, mqtt_port=mosquitto.port, ledger=str(tmp_path / "ledger.jsonl"))
    # 60 simulated seconds a second: the fleet steps every second and answers meanwhile
    runner = threading.Thread(target=run_simulation, args=(sim,), daemon=True, kwargs={
        "start": int(time.time()) - 3600, "end": None, "speed": 60, "batch": 1,
        "state_path": tmp_path / "state.json", "stop": stop})
    acks, boots = [], []
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="operator")

    def on_message(_c, _u, msg):
        if msg.topic.endswith("/cmd/ack"):
            acks.append(json.loads(msg.payload))
        else:
            boots.append(json.loads(msg.payload)["boot"])

    client.on_message = on_message
    client.connect("127.0.0.1", mosquitto.port)
    client.subscribe([(f"boucle/v1/{BIN}/cmd/ack", 1), (f"boucle/v1/{BIN}/telemetry", 1)])
    client.loop_start()
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while not acks and time.monotonic() < deadline:
            # the same id until answered: the device runs it once however often it arrives
            client.publish(f"boucle/v1/{BIN}/cmd", json.dumps({"id": "op-1", "cmd": "reboot"}), qos=1)
            time.sleep(0.5)
        while 2 not in boots and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        runner.join(30)
        client.loop_stop()
        client.disconnect()
    assert acks and acks[0] == {"v": 1, "id": "op-1", "cmd": "reboot", "ok": True, "result": {"rebooting": True}}
    assert all(a == acks[0] for a in acks)
    assert 1 in boots and max(boots) == 2 and boots == sorted(boots)
