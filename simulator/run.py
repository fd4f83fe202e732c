"""`boucle simulate`: pace the fleet in event time and publish its payloads over MQTT.

Time modes: real time (--speed 1), accelerated (--speed N: N simulated seconds per
second), or as fast as the pipeline takes it (--speed 0). With --start in the past and
no --end, the fleet catches up at the chosen speed, then goes on in real time.

One MQTT connection carries every virtual device (docs/simulator.md): each payload
still names its own device, boot and seq, and goes to its own topic.
"""

from __future__ import annotations

import argparse
import logging
import math
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from boucle_fw.protocol import encode_status, topic

from boucle.cli import UserError
from boucle.device_keys import KeyStoreFile
from boucle.mqtt import BrokerUnavailable, close_session, open_session
from boucle.registry import RegistryError, load_registry
from boucle.settings import SettingsError, SimulatorSettings, load_settings
from simulator.boards import InterpreterUnavailable
from simulator.faults import FaultError, load_fault_file, parse_flag, resolve
from simulator.fleet import FIRMWARE, Fleet, load_state, save_state
from simulator.generate import generate_registry, parse_shape
from simulator.ledger import Ledger
from simulator.profiles import load_profiles

log = logging.getLogger("boucle.simulator")
MAX_UNACKED = 2000  # publishes in flight before we wait: back-pressure from the broker
UNACKED_GRACE_S = 60  # at the end, how long to wait for the broker to acknowledge the rest


@dataclass
class SimulationReport:
    start: int
    end: int
    readings: int       # readings taken
    payloads: int       # MQTT publishes (telemetry, status, duplicates, garbage)
    duplicates: int = 0  # telemetry payloads published a second time (duplicate faults)
    garbage: int = 0     # invalid payloads published (garbage faults): the gateway dead-letters them


def run_simulation(
    settings: SimulatorSettings,
    *,
    start: int,
    end: int | None,
    speed: float,
    batch: int,
    interval_s: int | None = None,
    state_path: Path | None = None,
    profiles_path: str | None = None,
    stop: threading.Event | None = None,
    progress: bool = False,
    faults: list[dict] | None = None,
    publish_hook: Callable[[str, bytes], None] | None = None,
    firmware: int = 0,
    boards_path: Path | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> SimulationReport:
    """Simulate from `start` to `end` (None: forever, real time once caught up) and publish.

    `faults`: fault descriptions (simulator.faults, docs/simulator.md), times relative to
    `start`. `publish_hook(topic, payload)` sees every publish in order (tests, captures).
    `firmware`: that many registry devices run the firmware itself on virtual boards
    (simulator/firmware_devices.py), in folders under `boards_path`. `interval_s`: the
    fleet's step (default `fleet_step`). `on_step(t, readings)` is called after each step
    with the readings taken so far (progress of a caller).
    """
    stop = stop or threading.Event()
    registry = load_registry(settings.registry)
    interval_s = interval_s or fleet_step(registry)
    state = load_state(state_path)
    start -= start % interval_s
    resolved = resolve(faults or [], [d.id for d in registry.devices], start, settings.seed)
    ledger = Ledger(settings.ledger)
    prefix = settings.topic_prefix
    keys = KeyStoreFile(settings.device_keys).current()
    boards = None
    if firmware:
        from simulator.firmware_devices import FirmwareDevices, pick

        folder = boards_path or (state_path.parent if state_path else Path(".boucle")) / "boards"
        boards = FirmwareDevices(pick(registry, firmware), folder, settings.mqtt_host, settings.mqtt_port,
                                 prefix, start, speed, ledger, keys=keys)
    fleet = Fleet(registry, load_profiles(profiles_path), settings.seed, ledger, state, settings.topic_prefix,
                  faults=resolved, start_ts=start, interval_s=interval_s,
                  external=boards.ids if boards else frozenset(), keys=keys)
    inbox: queue.SimpleQueue = queue.SimpleQueue()  # commands (and boards' telemetry), from paho's thread

    def subscribe(c, _present) -> None:
        c.subscribe([(f"{prefix}/+/cmd", 1)] + [(t, 1) for t in (boards.topics() if boards else [])])

    session = open_session(settings, f"boucle-simulator-{settings.seed}", persistent=False, max_inflight=1000,
                           on_message=lambda _c, _u, msg: inbox.put((msg.topic, msg.payload)),
                           on_connect=subscribe)
    client = session.client
    # Acknowledgements by message id, from paho's on_publish: a message published while the
    # broker is away is kept by paho and sent again after it reconnects (same id), but its
    # MQTTMessageInfo keeps the failure code and raises, so it cannot tell us.
    acked: set[int] = set()
    client.on_publish = lambda _c, _u, mid, _rc=None, _p=None: acked.add(mid)
    unacked: deque[int] = deque()
    payloads = 0

    def settle() -> None:
        while unacked and unacked[0] in acked:
            acked.discard(unacked.popleft())

    def publish(t: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        nonlocal payloads
        if publish_hook is not None:
            publish_hook(t, payload)
        info = client.publish(t, payload, qos=qos, retain=retain)
        if qos:  # QoS 0 (health) is fire and forget: paho drops it while disconnected
            unacked.append(info.mid)
        payloads += 1
        settle()
        while len(unacked) > MAX_UNACKED and not stop.is_set():  # back-pressure: wait for the broker
            stop.wait(0.002)
            settle()

    def answer_commands() -> None:
        while not inbox.empty():
            got, body = inbox.get()
            if got.endswith("/telemetry"):
                boards.on_telemetry(got, body)
                continue
            answer = fleet.command(got[len(prefix) + 1:-len("/cmd")], body)
            if answer is not None:
                publish(*answer)

    def pause(seconds: float) -> bool:
        """Wait, answering commands meanwhile; True if asked to stop."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            answer_commands()
            if stop.wait(min(left, 0.2)):
                return True
        return stop.is_set()

    for dev in fleet.devices.values():
        if dev.device.id not in fleet.external:  # a virtual board announces itself
            publish(topic(settings.topic_prefix, dev.device.id, "status"),
                    encode_status(True, dev.boot, FIRMWARE, "power_on"), retain=True)

    t = start
    wall0 = time.monotonic()
    last_progress = 0.0
    try:
        while not stop.is_set() and (end is None or t < end):
            wait = (t - start) / speed - (time.monotonic() - wall0) if speed > 0 else 0.0
            # Never ahead of the real clock: the gateway would refuse readings from the future.
            wait = max(wait, t - time.time())
            if wait > 0 and pause(wait):
                break
            answer_commands()
            fleet.step(t, interval_s)
            if boards is not None:
                boards.step(t, fleet.world)
            while fleet.status_out:
                publish(*fleet.status_out.pop(0), retain=True)
            for tp, payload in fleet.payloads(batch if t < time.time() - interval_s else 1):
                publish(tp, payload, qos=0 if tp.endswith("/health") else 1)
            ledger.flush(before=t - t % 3600)
            if progress and time.monotonic() - last_progress > 0.5:
                last_progress = time.monotonic()
                _progress(start, t, end, fleet.readings, time.monotonic() - wall0)
            if on_step is not None:
                on_step(t, fleet.readings)
            t += interval_s
        for tp, payload in fleet.flush():
            publish(tp, payload, qos=0 if tp.endswith("/health") else 1)
        deadline = time.monotonic() + UNACKED_GRACE_S
        while unacked and time.monotonic() < deadline:
            time.sleep(0.005)
            settle()
        if boards is not None:
            pause(1.0)  # the boards' last telemetry reaches the ledger
        if unacked:
            log.warning("%d publishes not acknowledged by the broker at %s:%s after %d s; they are lost "
                        "(is the broker running?)", len(unacked), settings.mqtt_host, settings.mqtt_port,
                        UNACKED_GRACE_S)
    finally:
        if boards is not None:
            boards.close()
        ledger.close()
        save_state(state_path, fleet.state)
        close_session(session)
        if progress:
            _progress(start, t, end, fleet.readings, time.monotonic() - wall0)
            print(file=sys.stderr)
    readings = fleet.readings + (boards.readings if boards else 0)
    return SimulationReport(start, t, readings, payloads, fleet.sent["duplicates"], fleet.sent["garbage"])


def fleet_step(registry) -> int:
    """The longest step at which every device's reading falls on a step: the greatest common
    divisor of the registry's intervals (60 s for an empty registry). Stepping at it rather
    than every minute is what makes a backfill of weeks take seconds (docs/simulator.md)."""
    return math.gcd(*(d.interval_s for d in registry.devices)) or 60


def _progress(start: int, t: int, end: int | None, readings: int, wall_s: float) -> None:
    """One status line on stderr: simulated time, bar and share (with an end), rate, ETA."""
    stamp = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")
    bar = eta = ""
    if end:
        done = min(1.0, (t - start) / max(1, end - start))
        filled = int(30 * done)
        bar = f" [{'#' * filled}{'.' * (30 - filled)}] {100 * done:5.1f}%"
        if 0 < done < 1:
            eta = f", {wall_s * (1 - done) / done:,.0f} s left"
    rate = readings / wall_s if wall_s > 0 else 0.0
    print(f"\rsimulated {stamp}{bar}  {readings:,} readings ({rate:,.0f}/s{eta})  ",
          end="", file=sys.stderr, flush=True)


def parse_time(text: str) -> int:
    """'now', '-2d', '-6h', a Unix time, or an ISO 8601 date/time (UTC if no offset)."""
    now = int(time.time())
    if text == "now":
        return now
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    if text.startswith("-") and text[-1] in units and text[1:-1].isdigit():
        return now - int(text[1:-1]) * units[text[-1]]
    if text.isdigit():
        return int(text)
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"time {text!r}: use 'now', '-2d', '-6h', a Unix time or an ISO date like 2026-11-01") from None
    return int((dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp())


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", help="registry TOML file (env BOUCLE_REGISTRY; default: the example)")
    parser.add_argument("--start", default="now", help="simulated start: now, -2d, -6h, Unix time or ISO date")
    parser.add_argument("--end", help="simulated end (default: run forever, in real time once caught up)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="simulated seconds per second: 1 real time, 3600 an hour a second, 0 as fast as possible")
    parser.add_argument("--batch", type=int, default=10,
                        help="readings per payload while catching up on the past (1 in real time)")
    parser.add_argument("--seed", type=int, help="random seed (env BOUCLE_SEED)")
    parser.add_argument("--ledger", help="ground-truth ledger file, JSON lines (env BOUCLE_LEDGER)")
    parser.add_argument("--state", default=".boucle/simulator-state.json",
                        help="boot counters and energy totals kept between runs (the fleet's NVS)")
    parser.add_argument("--profiles", help="site profiles file (default: simulator/profiles.toml)")
    parser.add_argument("--mqtt-host", help="broker host (env BOUCLE_MQTT_HOST)")
    parser.add_argument("--mqtt-port", type=int, help="broker port (env BOUCLE_MQTT_PORT)")
    parser.add_argument("--faults", metavar="FILE", help="TOML file of [[faults]] tables (docs/simulator.md)")
    parser.add_argument("--fault", action="append", default=[], metavar="SPEC",
                        help="one fault, e.g. kind=outage,start=+2h,duration=30m,devices=ecully-* (repeatable)")
    parser.add_argument("--firmware", type=int, default=0, metavar="N",
                        help="run N registry devices on the firmware itself: one MicroPython process "
                             "(unix port, built on first use) per device, instead of the Python model")
    parser.add_argument("--generate-registry", metavar="TxSxD",
                        help="print a registry of T territories x S sites x D devices (TOML) and exit")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.generate_registry:
        try:
            shape = parse_shape(args.generate_registry)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        sys.stdout.write(generate_registry(*shape, seed=args.seed if args.seed is not None else 1))
        return 0
    if args.speed < 0:
        raise UserError("--speed must be 0 (as fast as possible) or positive")
    try:
        faults = load_fault_file(args.faults) if args.faults else []
        faults += [parse_flag(text) for text in args.fault]
        settings = load_settings(SimulatorSettings, registry=args.registry, seed=args.seed, ledger=args.ledger,
                                 mqtt_host=args.mqtt_host, mqtt_port=args.mqtt_port)
        start = parse_time(args.start)
        end = parse_time(args.end) if args.end else None
        if args.firmware < 0:
            raise UserError("--firmware must be 0 or more (devices run on virtual boards)")
        report = run_simulation(settings, start=start, end=end, speed=args.speed, batch=max(1, args.batch),
                                state_path=Path(args.state), profiles_path=args.profiles, progress=True,
                                faults=faults, firmware=args.firmware)
    except (SettingsError, RegistryError, BrokerUnavailable, FaultError, ValueError, InterpreterUnavailable) as exc:
        raise UserError(str(exc)) from None
    extra = ""
    if report.duplicates or report.garbage:
        extra = f" ({report.duplicates:,} duplicates, {report.garbage:,} garbage payloads)"
    print(f"simulated {report.readings:,} readings in {report.payloads:,} payloads{extra}; ledger: {settings.ledger}")
    return 0
