"""`boucle up`: the whole stack on one machine, on embedded defaults.

Broker (Mosquitto or embedded amqtt) → gateway → SQLite → API (uvicorn) ← simulator.
The simulator, in a process of its own, starts 60 days in the past (the default 30-day
period and the one before it) and publishes as fast as the gateway takes it, through the
broker like real devices catching up; the URLs are printed once that backfill is stored
and rolled up, so the first view is full. Then it goes on in real time. A second run
fills only the gap since the first. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import signal
import sys
import threading
import time
from pathlib import Path

from boucle.cli import UserError
from boucle.logs import configure_logging
from boucle.private_files import private_folder
from boucle.registry import ApiKey, RegistryError, RegistryFile, hash_key
from boucle.settings import (
    DEFAULT_REGISTRY,
    ApiSettings,
    GatewaySettings,
    SettingsError,
    SimulatorSettings,
    load_settings,
)

log = logging.getLogger("boucle.up")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8000, help="API port (default 8000)")
    parser.add_argument("--mqtt-port", type=int, default=1883, help="broker port (default 1883; 0 picks a free one)")
    parser.add_argument("--broker", choices=["auto", "mosquitto", "embedded"], default="auto",
                        help="auto: Mosquitto if installed, else the embedded amqtt broker")
    parser.add_argument("--registry", default=DEFAULT_REGISTRY, help="registry TOML file (default: the example)")
    parser.add_argument("--data-dir", default=".boucle", help="where the store, ledger and broker data live")
    parser.add_argument("--backfill", default="60d",
                        help="how far in the past the simulation starts (default 60d: the default 30-day period "
                             "and the previous one; e.g. 2d, 12h); filled before the URLs are printed")
    parser.add_argument("--speed", type=float, default=0,
                        help="simulated seconds per second while catching up (default 0: as fast as the gateway "
                             "stores them; 3600 is an hour a second)")
    parser.add_argument("--batch", type=int, default=100,
                        help="readings per payload while catching up (default 100; the protocol allows 200 "
                             "in 8 KiB)")
    parser.add_argument("--no-simulator", action="store_true", help="run without the simulated fleet")
    parser.add_argument("--firmware", type=int, default=0, metavar="N",
                        help="run N of the fleet's devices on the firmware itself (MicroPython unix port, "
                             "one process each; built on first use) instead of the simulator's model")
    parser.add_argument("--seed", type=int, default=1, help="simulator seed")


def run(args: argparse.Namespace) -> int:
    configure_logging(logging.WARNING)
    from boucle.broker import BrokerError, free_port, port_is_free, start_broker
    from boucle.mqtt import BrokerUnavailable
    from cloud.app import create_app
    from cloud.security import new_key
    from cloud.serve import ServerThread
    from gateway.service import Gateway

    data = Path(args.data_dir)
    private_folder(data)  # 0700: store, spool, ledger and broker data are nobody else's
    mqtt_port = args.mqtt_port or free_port()
    if not port_is_free(args.port, "127.0.0.1"):
        raise UserError(f"port {args.port} is already in use (another boucle up?); pass --port with a free port")
    if not port_is_free(mqtt_port):
        raise UserError(f"MQTT port {mqtt_port} is already in use (a broker already running?); "
                        "pass --mqtt-port with a free port, or --mqtt-port 0 for any")
    try:
        registry = RegistryFile(args.registry)
    except RegistryError as exc:
        raise UserError(str(exc)) from None
    if args.firmware:
        from simulator.boards import build_tools_missing
        from simulator.firmware_devices import pick

        if missing := build_tools_missing():
            raise UserError(f"--firmware needs the MicroPython unix port, which cannot be built here: {missing}")
        try:
            pick(registry.current(), args.firmware)
        except ValueError as exc:
            raise UserError(str(exc)) from None

    store_url = f"sqlite:///{data / 'boucle.db'}"
    from boucle.broker import mosquitto_binary

    embedded = args.broker == "embedded" or (args.broker == "auto" and mosquitto_binary() is None)
    common = {"mqtt_port": mqtt_port, "registry": str(registry.path), "mqtt_protocol": "3.1.1" if embedded else "auto",
              "device_keys": str(data / "device-keys")}
    try:
        gw_settings = load_settings(GatewaySettings, **common, store_url=store_url, metrics_port=0,
                                    spool_path=str(data / "spool.db"),
                                    client_id="boucle-up-gateway")
        api_settings = load_settings(ApiSettings, port=args.port, registry=str(registry.path), store_url=store_url)
        sim_settings = load_settings(SimulatorSettings, **common, seed=args.seed, ledger=str(data / "ledger.jsonl"))
    except SettingsError as exc:
        raise UserError(str(exc)) from None

    stack: list = []
    try:
        broker = start_broker(args.broker, mqtt_port, data)
        stack.append(broker.stop)
        print(f"broker     {broker.name} on mqtt://127.0.0.1:{mqtt_port}", flush=True)
        gateway = Gateway(gw_settings, registry=registry).start()
        stack.append(gateway.stop)
        print(f"gateway    storing into {data / 'boucle.db'}", flush=True)

        demo_key = new_key()
        app = create_app(api_settings, registry_file=registry,
                         extra_keys=[ApiKey(id="boucle-up-demo", sha256=hash_key(demo_key), admin=True)])
        api = ServerThread(app, "127.0.0.1", args.port).start()
        stack.append(api.stop)
        if not api.started:
            raise UserError(f"the API could not start on port {args.port}")

        if not args.no_simulator:
            start = backfill_start(gateway, registry, args.backfill)
            simulator = SimulatorProcess(sim_settings, start, args, data)
            stack.append(simulator.stop)
            print(f"simulator  {len(registry.current().devices)} devices, from "
                  f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(start))} UTC "
                  f"{'as fast as the gateway stores' if not args.speed else f'at {args.speed:g}×'} "
                  "until caught up, then real time", flush=True)
            if args.firmware:
                print(f"boards     {args.firmware} of them on the firmware (MicroPython unix port), "
                      f"in {data / 'boards'}", flush=True)
            if not wait_for_backfill(gateway, registry, simulator, start):
                raise UserError("the simulator stopped before the backfill was stored (see the log above)")

        url = f"http://127.0.0.1:{args.port}"
        print(f"\nAPI:       {url}\nAPI docs:  {url}/docs\nAPI key:   {demo_key}\n"
              f"Dashboard: {url}/#key={demo_key}\n"
              f"Try:       curl -H 'X-API-Key: {demo_key}' {url}/v1/territories\n"
              "Ctrl-C stops everything.", flush=True)
        done = threading.Event()
        # SIGINT too, explicitly: started in the background (`nohup`, `cmd &` in a script)
        # a process inherits SIGINT ignored, and Ctrl-C or `kill -INT` would not stop it
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: done.set())
        while not done.wait(0.5):
            pass
        print("\nstopping...", flush=True)
    except (BrokerError, BrokerUnavailable) as exc:
        raise UserError(str(exc)) from None
    finally:
        for stop in reversed(stack):
            try:
                stop()
            except Exception:
                log.debug("stop failed", exc_info=True)
    print("stopped.")
    return 0


def backfill_start(gateway, registry, backfill: str) -> int:
    """Where the simulation starts: `backfill` ago, or just after the newest stored reading
    if a previous run got further (a second `boucle up` fills the gap, not 60 days again)."""
    from simulator.run import parse_time

    start = parse_time(f"-{backfill}")
    seen = gateway.store.last_seen([d.id for d in registry.current().devices])
    newest = max((ts for ts, _received in seen.values()), default=0)
    return max(start, newest + 1)


class SimulatorProcess:
    """The simulated fleet in a process of its own (spawned): the gateway keeps this
    process's cores for itself. Shares how far it got (`t`, `readings`) for the progress.
    It stops when told, or when this process goes (its end of the pipe closes)."""

    def __init__(self, settings, start: int, args: argparse.Namespace, data: Path):
        ctx = multiprocessing.get_context("spawn")  # not fork: this process already runs threads
        self.t = ctx.Value("q", start, lock=False)
        self.readings = ctx.Value("q", 0, lock=False)
        child_end, self._pipe = ctx.Pipe(duplex=False)
        self.process = ctx.Process(
            target=_simulate, name="boucle-simulator", daemon=True,
            args=(settings, start, args.speed, max(1, args.batch), data, args.firmware,
                  child_end, self.t, self.readings))
        self.process.start()
        child_end.close()

    def stop(self) -> None:
        self._pipe.close()  # the child's watcher sees end of file and stops the simulation
        self.process.join(20)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)


def _simulate(settings, start: int, speed: float, batch: int, data: Path, firmware: int,
              parent, t, readings) -> None:
    """The simulator process: catch up from `start`, then real time, until the parent's
    end of the pipe closes."""
    configure_logging(logging.WARNING)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    stopping = threading.Event()

    def watch() -> None:
        try:
            parent.recv()
        except (EOFError, OSError):
            pass
        stopping.set()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()

    def on_step(now: int, taken: int) -> None:
        t.value, readings.value = now, taken

    from simulator.run import run_simulation

    try:
        run_simulation(settings, start=start, end=None, speed=speed, batch=batch,
                       state_path=data / "simulator-state.json", stop=stopping, firmware=firmware,
                       boards_path=data / "boards", on_step=on_step)
    except Exception:
        log.exception("simulator stopped")
        sys.exit(1)


def expected_readings(registry, start: int, end: int) -> int:
    """Readings the registry's devices take between `start` and `end` (one per interval_s)."""
    return sum(max(0, end - start) // d.interval_s for d in registry.current().devices)


def wait_for_backfill(gateway, registry, simulator: SimulatorProcess, start: int) -> bool:
    """Block until the simulator has caught up with the time we started and the gateway has
    stored and rolled up what it published, showing progress (a bar on a terminal, a line
    every 5 s otherwise). False if the simulator died first."""
    from simulator.run import fleet_step

    caught_up_at = int(time.time()) - fleet_step(registry.current())  # its last step before now
    total = expected_readings(registry, start, caught_up_at)
    wall0 = time.monotonic()
    bar = Progress(total, sys.stderr if total else None)
    last_change, last_stored = wall0, -1
    while True:
        stored = _stored(gateway)  # since the gateway started, just before the simulator
        if stored != last_stored:
            last_change, last_stored = time.monotonic(), stored
        # All it published is stored, or (some readings refused: dead letters) nothing came for 10 s.
        settled = stored >= simulator.readings.value or time.monotonic() - last_change > 10
        done = simulator.t.value >= caught_up_at and settled and not gateway.spool.dirty(1)
        bar.show(stored, time.monotonic() - wall0, done)
        if done:
            return True
        if not simulator.process.is_alive():
            bar.show(stored, time.monotonic() - wall0, True)
            return False
        time.sleep(0.25)


def _stored(gateway) -> int:
    return int(gateway.metrics.registry.get_sample_value("boucle_gateway_readings_stored_total") or 0)


class Progress:
    """Backfill progress: a redrawn bar on a terminal, plain lines every 5 s otherwise
    (a log, a pipe); `out` None shows nothing (nothing to fill)."""

    def __init__(self, total: int, out, every_s: float = 5.0):
        self.total, self.out, self.every_s = total, out, every_s
        self.tty = out is not None and out.isatty()
        self.last = -every_s

    def show(self, stored: int, wall_s: float, final: bool = False) -> None:
        """Draw (at most every 0.2 s on a terminal, every `every_s` otherwise); None: quiet."""
        if self.out is None:
            return
        if not final and wall_s - self.last < (0.2 if self.tty else self.every_s):
            return
        self.last = wall_s
        self.out.write(("\r" if self.tty else "") + backfill_line(stored, self.total, wall_s, final)
                       + ("\n" if final or not self.tty else ""))
        self.out.flush()


def backfill_line(stored: int, total: int, wall_s: float, final: bool = True) -> str:
    """'backfill [#####.....]  52.1%  312,000/600,000 readings stored, 9,800/s, 29 s left'."""
    done = min(1.0, stored / max(1, total))
    filled = int(30 * done)
    rate = stored / wall_s if wall_s > 0 else 0.0
    left = f", {(total - stored) / rate:,.0f} s left" if rate and done < 1 else f" in {wall_s:,.0f} s"
    if done >= 1 and not final:
        left += ", rolling up"
    return (f"backfill   [{'#' * filled}{'.' * (30 - filled)}] {100 * done:5.1f}%  "
            f"{stored:,}/{total:,} readings stored, {rate:,.0f}/s{left}")
