"""`boucle calibrate DEVICE`: guided calibration of a scale, a CT clamp or a water meter's
pulse weight over MQTT.

The steps are the sensor type's (its descriptor's CALIBRATION, firmware/boucle_fw/sensors/).
The technician is told what to do at each step (empty the scale, put the known weight
on; switch the load off, then on; note the meter's dial, draw a known volume); after each,
a command goes to the device's `cmd`
topic and its ack comes back on `cmd/ack` (firmware/boucle_fw/commands.py). The
device keeps the result in its own storage; the tool echoes it into the registry's
`calibration = {...}` of that device, so the values survive a re-flash.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import paho.mqtt.client as mqtt

from boucle import kinds
from boucle.cli import UserError
from boucle.registry import RegistryError, load_registry
from boucle.settings import MqttSettings, SettingsError, load_settings

from . import registry_edit
from .transaction import FileTransaction, TransactionError
from .verify import BrokerAccess, _client

ask = input  # the technician's "done" at each step; replaced in tests


@dataclass(frozen=True)
class Step:
    """One guided step: what the person does, then the command sent to the device."""

    instruction: str
    cmd: str
    args: dict[str, Any]


def steps_of(sensor_type: str, value: float) -> list[Step]:
    """A sensor type's guided steps (its descriptor's CALIBRATION), with the technician's
    reference value (grams, amps, litres) put where its steps take it."""
    from boucle_fw import sensors

    cal = sensors.get(sensor_type).CALIBRATION
    return [Step(text.format(value=value), cmd, {**args, key: value} if key else dict(args))
            for text, cmd, args, key in cal["steps"]]


def registry_values(results: list[dict[str, Any]]) -> dict[str, float]:
    """Flatten the device's ack results into the registry's `calibration` numbers."""
    values: dict[str, float] = {}
    for result in results:
        for key, value in result.items():
            if key == "calibration" and isinstance(value, list):  # CT: [[counts, amps], [counts, amps]]
                for i, (counts, amps) in enumerate(value):
                    values[f"ct_counts_{i}"] = float(counts)
                    values[f"ct_amps_{i}"] = float(amps)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                values[key] = float(value)
    return values


class CommandChannel:
    """Send commands to one device and wait for the matching acks."""

    def __init__(self, access: BrokerAccess, prefix: str, device_id: str):
        self.topic = f"{prefix}/{device_id}/cmd"
        self._acks: queue.Queue[dict[str, Any]] = queue.Queue()
        self._ready = threading.Event()
        self._refused: list[str] = []
        self._client = _client(access, f"boucle-calibrate-{uuid.uuid4().hex[:8]}")
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *a: self._ready.set()
        self._client.on_message = self._on_message
        self.access = access

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._refused.append(str(reason))
            self._ready.set()
        else:
            client.subscribe(self.topic + "/ack", qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        if isinstance(body, dict):
            self._acks.put(body)

    def __enter__(self) -> Self:
        try:
            self._client.connect(self.access.host, self.access.port, keepalive=30)
        except OSError as exc:
            raise UserError(f"broker {self.access.describe()} unreachable ({exc.strerror or exc}); "
                            "set BOUCLE_MQTT_HOST/BOUCLE_MQTT_PORT") from None
        self._client.loop_start()
        if not self._ready.wait(10) or self._refused:
            self.__exit__()
            raise UserError(f"the broker refused this account ({', '.join(self._refused) or 'no answer'}); "
                            "set BOUCLE_MQTT_USERNAME/BOUCLE_MQTT_PASSWORD to an account that may write "
                            f"{self.topic} and read {self.topic}/ack")
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def send(self, cmd: str, args: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Publish a command and return its result; UserError with the device's words if refused."""
        cmd_id = uuid.uuid4().hex[:12]
        self._client.publish(self.topic, json.dumps({"id": cmd_id, "cmd": cmd, "args": args}), qos=1)
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                ack = self._acks.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if ack.get("id") != cmd_id:
                continue
            if not ack.get("ok"):
                raise UserError(f"the device refused {cmd}: {ack.get('error', 'no reason given')}")
            return ack.get("result") or {}
        raise UserError(f"no answer to {cmd} within {timeout:g} s: is the device online (boucle flash verified "
                        "it)? A deep-sleep sensor only reads commands when it wakes: wait for its next "
                        "publish or raise --timeout")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("device", help="device id, as in the registry")
    parser.add_argument("--registry", default=os.environ.get("BOUCLE_REGISTRY"),
                        help="registry TOML file (default: $BOUCLE_REGISTRY)")
    for option in kinds.calibrate_options():  # each kind's (boucle/kinds/<kind>.py)
        parser.add_argument("--" + option.name.replace("_", "-"), type=float, default=option.default,
                            help=option.help)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each ack (default 30)")
    parser.add_argument("--yes", action="store_true", help="do not wait for Enter between steps")


def _steps_for(profile: str | None, args: argparse.Namespace) -> list[Step]:
    from boucle_fw import sensors

    sensor_type = sensors.profile_type(profile or "")
    cal = sensors.get(sensor_type).CALIBRATION if sensor_type else None
    if cal is None:
        able = sorted(p for t in sensors.TYPES if sensors.get(t).CALIBRATION for p in sensors.get(t).PROFILES)
        raise UserError(f"calibration applies to {', '.join(able)} devices; this one's profile is {profile!r} "
                        "(PZEM meters and pulse counters are calibrated at the factory)")
    value = kinds.calibration_value(sensors.kind_of(sensor_type), cal["value"], args)
    if not value or value <= 0:
        raise UserError(cal["missing"])
    return steps_of(sensor_type, round(value, 3))


def run(args: argparse.Namespace) -> int:
    if not args.registry:
        raise UserError("--registry is required (or set BOUCLE_REGISTRY)")
    registry_path = Path(args.registry)
    try:
        device = load_registry(registry_path).device(args.device)
        mqtt_settings = load_settings(MqttSettings)
    except (RegistryError, SettingsError) as exc:
        raise UserError(str(exc)) from None
    if device is None:
        raise UserError(f"device {args.device!r} is not in {registry_path}; provision it with boucle flash first")
    steps = _steps_for(device.profile, args)
    access = BrokerAccess(mqtt_settings.mqtt_host, mqtt_settings.mqtt_port, mqtt_settings.mqtt_username,
                          mqtt_settings.mqtt_password, mqtt_settings.mqtt_tls_ca or None)
    results = []
    print(f"Calibrating {device.id} ({device.profile}) through {access.describe()}")
    with CommandChannel(access, mqtt_settings.topic_prefix, device.id) as channel:
        for n, step in enumerate(steps, 1):
            print(f"Step {n}/{len(steps)}: {step.instruction}")
            if not args.yes:
                ask("  Press Enter when done… ")
            result = channel.send(step.cmd, step.args, args.timeout)
            print(f"  device: {step.cmd} ok {json.dumps(result)}")
            results.append(result)
    values = registry_values(results)
    try:
        new_text = registry_edit.with_calibration(registry_path.read_text("utf-8"), device.id, values, registry_path)
        txn = FileTransaction()
        txn.stage(registry_path, new_text)
        txn.commit()
    except (registry_edit.RegistryEditError, TransactionError) as exc:
        raise UserError(f"the device is calibrated but the registry was not updated: {exc}") from None
    shown = ", ".join(f"{k} = {v:g}" for k, v in values.items())
    print(f"Stored on the device and in {registry_path}: calibration = {{ {shown} }}")
    return 0
