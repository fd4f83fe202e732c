"""`boucle up`: the whole stack on one machine, on embedded defaults.

Broker (Mosquitto or embedded amqtt) → gateway → SQLite → API (uvicorn) ← simulator.
The simulator starts a few days in the past and catches up in accelerated time, then
goes on in real time; indicators appear within seconds. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
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
    parser.add_argument("--backfill", default="2d", help="how far in the past the simulation starts (e.g. 2d, 12h)")
    parser.add_argument("--speed", type=float, default=3600,
                        help="simulated seconds per second while catching up (default 3600: an hour a second)")
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
    from simulator.run import parse_time, run_simulation

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

    stopping = threading.Event()
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
            def simulate() -> None:
                try:
                    run_simulation(sim_settings, start=parse_time(f"-{args.backfill}"), end=None,
                                   speed=args.speed, batch=10, state_path=data / "simulator-state.json",
                                   stop=stopping, firmware=args.firmware, boards_path=data / "boards")
                except Exception:
                    log.exception("simulator stopped")

            sim_thread = threading.Thread(target=simulate, name="simulator", daemon=True)
            sim_thread.start()
            stack.append(lambda: (stopping.set(), sim_thread.join(15)))
            print(f"simulator  {len(registry.current().devices)} devices, from {args.backfill} ago "
                  f"at {args.speed:g}× until caught up, then real time", flush=True)
            if args.firmware:
                print(f"boards     {args.firmware} of them on the firmware (MicroPython unix port), "
                      f"in {data / 'boards'}", flush=True)

        url = f"http://127.0.0.1:{args.port}"
        print(f"\nAPI:       {url}\nAPI docs:  {url}/docs\nAPI key:   {demo_key}\n"
              f"Dashboard: {url}/#key={demo_key}\n"
              f"Try:       curl -H 'X-API-Key: {demo_key}' {url}/v1/territories\n"
              "Ctrl-C stops everything.", flush=True)
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        try:
            while not done.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        print("\nstopping...", flush=True)
    except (BrokerError, BrokerUnavailable) as exc:
        raise UserError(str(exc)) from None
    finally:
        stopping.set()
        for stop in reversed(stack):
            try:
                stop()
            except Exception:
                log.debug("stop failed", exc_info=True)
    print("stopped.")
    return 0
