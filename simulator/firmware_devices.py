"""`boucle simulate --firmware N`: N devices of the registry run by the firmware itself, one
MicroPython process (unix port) per device, instead of the fleet's Python model of them.

The fleet (simulator/fleet.py) still models their world, as for every device: a meter's
power, a bin's content. Before each step the boards get it (the power their S0 meter,
CT clamp or PZEM sees, the weight on their load cell, the distance to the waste), then
run in virtual time up to the step, all at once, and publish on their own MQTT
connections, with their own last wills and command answers. The ledger holds their truth
as for the modelled devices: true_wh and the waste from the model, and `wh` and
`readings` from what the boards publish (counter increments attributed to the reading's
hour: exactly what the API must find, as for a modelled meter).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from collections.abc import Mapping
from pathlib import Path

from boucle_fw import config as fw_config

from boucle.registry import Device, Registry
from simulator.boards import BOOT_MS, STANDINS, Interpreter, VirtualBoard, build_interpreter
from simulator.ledger import Ledger
from simulator.models import counted

log = logging.getLogger("boucle.simulator.firmware")


def wirable_profiles() -> tuple[str, ...]:
    """The profiles a virtual board can wire: those whose sensor types all have a stand-in
    on the unix port (KINDS of firmware/unix-port/board/sensors.py, plain Python)."""
    spec = importlib.util.spec_from_file_location("boucle_board_sensors", STANDINS / "sensors.py")
    assert spec is not None and spec.loader is not None
    standins = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(standins)
    return tuple(name for name, p in fw_config.profiles().items()
                 if all(s["type"] in standins.KINDS for s in p["sensors"]))


PROFILES = wirable_profiles()


def pick(registry: Registry, n: int) -> list[Device]:
    """The first n devices of the registry with a profile a virtual board can wire."""
    chosen = [d for d in registry.devices if d.profile in PROFILES][:n]
    if len(chosen) < n:
        raise ValueError(f"--firmware {n}: the registry has {len(chosen)} devices with a profile "
                         f"a virtual board can wire ({', '.join(PROFILES)})")
    return chosen


class FirmwareDevices:
    """The virtual boards of a simulation, stepped with the fleet."""

    def __init__(self, devices: list[Device], folder: Path, mqtt_host: str, mqtt_port: int, prefix: str,
                 start_ts: int, speed: float, ledger: Ledger, interpreter: Interpreter | None = None,
                 keys: Mapping[str, bytes] | None = None):
        """`keys`: the device key store's keys: those boards get theirs in their config and sign."""
        if interpreter is None:
            print("building MicroPython's unix port for the virtual boards (once, about a minute)...",
                  file=sys.stderr, flush=True)
            interpreter = build_interpreter()
        self.prefix = prefix
        self.ledger = ledger
        self.boards: dict[str, VirtualBoard] = {}
        self.last_wh: dict[str, int] = {}  # a board's last counter (Wh or L) seen
        self.seen: set[tuple[str, int, int]] = set()
        self.readings = 0
        for d in devices:
            # its own MQTT identity, no password: the broker `boucle up` starts is anonymous
            signing = {"sign_key": keys[d.id].hex()} if keys and d.id in keys else {}
            cfg = fw_config.make_config(d.id, "boucle-sim", "boucle-sim", mqtt_host, mqtt_port, d.id, "", None,
                                        d.profile, interval_s=d.interval_s, **signing)
            board = VirtualBoard(interpreter, folder / d.id, cfg, world_ms=start_ts * 1000, speed=speed,
                                 bench={"hx711": {"zero_counts": 0}, "us_per_clock_read": 100})
            board.provision()
            (board.folder / "rtc.json").unlink(missing_ok=True)  # each simulator start powers the boards up
            self.boards[d.id] = board

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self.boards)

    def topics(self) -> list[str]:
        return [f"{self.prefix}/{device}/telemetry" for device in self.boards]

    def step(self, ts: int, world: dict[str, dict[str, float]]) -> None:
        """Give each board its world, run them all up to ts (in parallel), restart those
        that reset or went to deep sleep."""
        for device, board in self.boards.items():
            params = self._params(board, world.get(device, {}))
            if not board.running:
                board.params.update(params)
                board.start()
            elif params:
                board.set(**params)
            board.grant(ts * 1000)
        for board in self.boards.values():
            msg = board.report()
            while "reset" in msg:
                board.world_ms += msg.get("sleep", 0) or BOOT_MS
                if board.world_ms >= ts * 1000:
                    break  # asleep (or rebooting) past this step: it starts again at the next
                board.start()
                msg = board.run(ts * 1000)
            if "repl" in msg:
                log.error("virtual board %s stopped: %s", board.folder.name, msg["repl"])

    @staticmethod
    def _params(board: VirtualBoard, seen: dict[str, float]) -> dict[str, float]:
        out = {}
        if "power_w" in seen:
            out["power_w"] = round(seen["power_w"], 1)
        if "weight_g" in seen:
            out["weight_g"] = round(seen["weight_g"], 1)
        if "flow_lph" in seen:
            out["flow_lph"] = round(seen["flow_lph"], 1)
        if "fill" in seen:
            ranger = board.config["sensors"][0]
            if "empty_mm" in ranger:
                span = ranger["empty_mm"] - ranger["full_mm"]
                out["distance_mm"] = round(ranger["empty_mm"] - min(1.1, seen["fill"]) * span, 1)
        return out

    def on_telemetry(self, topic: str, payload: bytes) -> None:
        """A board's telemetry, as the broker delivered it: into the ledger, once."""
        device = topic[len(self.prefix) + 1:-len("/telemetry")]
        try:
            body = json.loads(payload)
        except ValueError:
            return
        for r in body.get("readings", []):
            key = (device, body.get("boot", 0), r.get("seq"))
            if key in self.seen:
                continue  # a QoS 1 repeat: the gateway drops it too
            self.seen.add(key)
            self.readings += 1
            amounts = {"readings": 1}
            for counter, key in counted():  # each kind's model's (simulator/models/)
                if counter in r:
                    last, self.last_wh[device] = self.last_wh.get(device), r[counter]
                    if last is not None:
                        amounts[key] = r[counter] - last if r[counter] >= last else r[counter]
            self.ledger.add(device, r["ts"], **amounts)

    def close(self) -> None:
        for board in self.boards.values():
            board.close()
