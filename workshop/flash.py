"""`boucle flash`: flash, provision, register and verify ESP32 boards at the bench.

Give it the serial ports of the boards (`boucle flash /dev/ttyUSB0 /dev/ttyUSB1`), or
`--wait` to take each board as it is plugged in. Each board goes through the stages of
workshop.provision with a progress bar per stage; a summary table ends the run.
docs/workshop.md walks through a bench session.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal, get_args, get_origin

from boucle_fw.sensors import profiles
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn
from rich.table import Table

from boucle import kinds
from boucle.cli import UserError
from boucle.settings import MqttSettings, SettingsError, load_settings

from . import images, provision
from .board import Board, ProgressFn, SerialBoard, list_ports
from .verify import BrokerAccess

# The tests replace this with a fake-board factory; nothing else selects the board.
open_board: Callable[[str, int], Board] = SerialBoard  # (port, baud)
PORT_POLL_S = 0.5    # how often --wait looks for a new serial port
PORT_SETTLE_S = 1.0  # then lets udev finish setting the new port's group and mode


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ports", nargs="*", metavar="PORT",
                        help="serial ports of the boards, e.g. /dev/ttyUSB0 (or use --wait)")
    parser.add_argument("--wait", action="store_true",
                        help="wait for boards to be plugged in, one after the other (Ctrl-C to stop)")
    parser.add_argument("--count", type=int, default=0, help="with --wait: stop after this many boards")
    where = parser.add_argument_group("files the device is added to")
    where.add_argument("--registry", default=os.environ.get("BOUCLE_REGISTRY"),
                       help="registry TOML file (default: $BOUCLE_REGISTRY)")
    where.add_argument("--password-file", default=os.environ.get("BOUCLE_MOSQUITTO_PASSWORD_FILE"),
                       help="Mosquitto password_file (default: $BOUCLE_MOSQUITTO_PASSWORD_FILE)")
    where.add_argument("--acl-file", default=os.environ.get("BOUCLE_MOSQUITTO_ACL_FILE"),
                       help="Mosquitto acl_file (default: $BOUCLE_MOSQUITTO_ACL_FILE)")
    where.add_argument("--key-store", default=os.environ.get("BOUCLE_DEVICE_KEYS"),
                       help="device key store the gateway checks signed telemetry with, the gateway's "
                            "BOUCLE_DEVICE_KEYS (default: $BOUCLE_DEVICE_KEYS); created mode 600")
    where.add_argument("--nats-authorization-file", default=os.environ.get("BOUCLE_NATS_AUTHORIZATION_FILE"),
                       help="also add the device to the clustered broker's users, e.g. "
                            "deploy/nats/authorization.conf (default: $BOUCLE_NATS_AUTHORIZATION_FILE)")
    where.add_argument("--reload-broker", metavar="CMD",
                       help="command that makes the broker re-read those files, e.g. "
                            "'systemctl reload mosquitto' or 'docker kill -s HUP mosquitto'")
    device = parser.add_argument_group("the device")
    device.add_argument("--site", required=True, help="registry site id the devices belong to")
    device.add_argument("--profile", required=True,
                        help=f"sensor profile: {', '.join(profiles())} "
                             "(each sensor type's, firmware/boucle_fw/sensors/)")
    seen: set[str] = set()
    for kind, key in kinds.device_keys():  # each kind's registry keys (boucle/kinds/<kind>.py)
        if key.option and key.name not in seen:
            seen.add(key.name)
            choices = get_args(key.type) if get_origin(key.type) is Literal else None
            device.add_argument("--" + key.name.replace("_", "-"), choices=choices,
                                type=None if choices else key.type, help=f"{kind} devices: {key.option}")
    device.add_argument("--interval-s", type=int, default=60, help="seconds between readings (default 60)")
    device.add_argument("--id-prefix", default="esp32",
                        help="device ids are PREFIX-<last 6 hex digits of the MAC> (default esp32)")
    device.add_argument("--full-mac-id", action="store_true", help="use all 12 hex digits of the MAC in the id")
    device.add_argument("--force", action="store_true",
                        help="re-provision a device id that is already registered (new password)")
    net = parser.add_argument_group("network the device joins")
    net.add_argument("--wifi-ssid", required=True, help="Wi-Fi network name (2.4 GHz)")
    net.add_argument("--wifi-password-file",
                     help="file holding the Wi-Fi password (else $BOUCLE_WIFI_PASSWORD, else a prompt)")
    net.add_argument("--broker-host", help="broker address as the device reaches it (default $BOUCLE_MQTT_HOST)")
    net.add_argument("--broker-port", type=int, help="broker port for the device (default $BOUCLE_MQTT_PORT)")
    net.add_argument("--ca-file", help="PEM CA of the broker's TLS certificate, written into the device config")
    image = parser.add_argument_group("MicroPython image")
    image.add_argument("--image", type=Path, help="image file (default: the newest one in --image-dir)")
    image.add_argument("--image-sha256", help="expected SHA-256 of --image (else its SHA256SUMS line)")
    image.add_argument("--image-dir", type=Path, default=None,
                       help=f"cache folder of images and SHA256SUMS (default {images.default_cache()})")
    image.add_argument("--keep-micropython", action="store_true",
                       help="do not erase or reflash: keep the board's MicroPython and files, copy only "
                            "changed app files, write a new config (with --force for a registered board)")
    image.add_argument("--chip", help="refuse boards that are not this chip (esp32, esp32s2, esp32s3, esp32c3, esp32c6)")
    image.add_argument("--baud", type=int, default=460800, help="flashing baud rate (default 460800)")
    check = parser.add_argument_group("verification and label")
    check.add_argument("--no-verify", action="store_true",
                       help="do not wait for the device to report (no broker reachable from the bench)")
    check.add_argument("--verify-timeout", type=float, default=120.0,
                       help="seconds to wait for the birth message and first telemetry (default 120)")
    check.add_argument("--label-dir", type=Path, help="write a printable label per device in this folder")
    check.add_argument("--label-format", choices=["png", "svg"], default="png")


def _wifi_password(args: argparse.Namespace) -> str:
    if args.wifi_password_file:
        try:
            return Path(args.wifi_password_file).read_text("utf-8").rstrip("\r\n")
        except OSError as exc:
            raise UserError(f"cannot read --wifi-password-file: {exc.strerror}") from None
    if "BOUCLE_WIFI_PASSWORD" in os.environ:
        return os.environ["BOUCLE_WIFI_PASSWORD"]
    if sys.stdin.isatty():
        return getpass.getpass(f"Wi-Fi password for {args.wifi_ssid!r}: ")
    raise UserError("no Wi-Fi password: set BOUCLE_WIFI_PASSWORD or pass --wifi-password-file "
                    "(never on the command line, where other users can read it)")


def _required_path(value: str | None, option: str, env: str) -> Path:
    if not value:
        raise UserError(f"{option} is required (or set {env})")
    return Path(value)


def build_plan(args: argparse.Namespace) -> provision.BenchPlan:
    """Check the options once for the whole batch and gather them in a BenchPlan."""
    try:
        mqtt = load_settings(MqttSettings)
    except SettingsError as exc:
        raise UserError(str(exc)) from None
    registry = _required_path(args.registry, "--registry", "BOUCLE_REGISTRY")
    if not registry.exists():
        raise UserError(f"registry {registry} does not exist; pass --registry with your registry file")
    fields = device_fields(provision.profile_kind(args.profile), args)
    fields["interval_s"] = args.interval_s
    ca_pem = None
    if args.ca_file:
        try:
            ca_pem = Path(args.ca_file).read_text("utf-8")
        except OSError as exc:
            raise UserError(f"cannot read --ca-file {args.ca_file}: {exc.strerror}") from None
    if args.chip:
        try:
            images.family_by_key(args.chip)
        except images.ImageError as exc:
            raise UserError(str(exc)) from None
    return provision.BenchPlan(
        registry_path=registry,
        password_file=_required_path(args.password_file, "--password-file", "BOUCLE_MOSQUITTO_PASSWORD_FILE"),
        acl_file=_required_path(args.acl_file, "--acl-file", "BOUCLE_MOSQUITTO_ACL_FILE"),
        site=args.site, profile=args.profile, device_fields=fields,
        wifi_ssid=args.wifi_ssid, wifi_password=_wifi_password(args),
        broker_host=args.broker_host or mqtt.mqtt_host, broker_port=args.broker_port or mqtt.mqtt_port,
        ca_pem=ca_pem, prefix=mqtt.topic_prefix,
        watch=BrokerAccess(mqtt.mqtt_host, mqtt.mqtt_port, mqtt.mqtt_username, mqtt.mqtt_password,
                           mqtt.mqtt_tls_ca or None),
        image_dir=args.image_dir or images.default_cache(), image_path=args.image,
        image_sha256=args.image_sha256, keep_micropython=args.keep_micropython, expected_chip=args.chip, id_prefix=args.id_prefix,
        id_style="mac" if args.full_mac_id else "short", force=args.force,
        verify=not args.no_verify, verify_timeout=args.verify_timeout, reload_broker=args.reload_broker,
        label_dir=args.label_dir, label_format=args.label_format,
        nats_authorization_file=Path(args.nats_authorization_file) if args.nats_authorization_file else None,
        key_store=_required_path(args.key_store, "--key-store", "BOUCLE_DEVICE_KEYS"),
    )


def device_fields(kind: str, args: argparse.Namespace) -> dict[str, object]:
    """The registry keys of the kind's device from its options (DEVICE_KEYS of
    boucle/kinds/<kind>.py): the option's value, else its default; a required one missing
    is refused with the kind's message."""
    out: dict[str, object] = {}
    for key in kinds.server(kind).DEVICE_KEYS:
        if key.option:
            value = getattr(args, key.name, None)
            if value is None and key.required:
                raise UserError(key.required.format(profile=args.profile))
            out[key.name] = key.default if value is None else value
    return out


class StepBars:
    """One rich progress bar per stage of the board being provisioned."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}
        self.started: dict[str, float] = {}
        self.totals: dict[str, int] = {}
        self.finished: set[str] = set()

    def start(self, step: str) -> ProgressFn:
        self.tasks[step] = self.progress.add_task(step, total=None, detail="")
        self.started[step] = time.monotonic()

        def update(done: int, total: int) -> None:
            self.totals[step] = max(total, 1)
            self.progress.update(self.tasks[step], completed=done, total=self.totals[step])
        return update

    def finish(self, step: str, detail: str) -> None:
        task = self.tasks[step]
        elapsed = time.monotonic() - self.started[step]
        total = self.totals.get(step, 1)
        self.finished.add(step)
        self.progress.update(task, completed=total, total=total, detail=f"{detail} ({elapsed:.1f} s)")

    def fail(self, message: str) -> None:
        for step, task in self.tasks.items():
            if step not in self.finished:
                self.progress.update(task, detail=f"[red]failed[/red]: {message}")


def _bars(console: Console) -> Progress:
    return Progress(TextColumn("  {task.description:<8}"), BarColumn(bar_width=24),
                    TaskProgressColumn(), TextColumn("{task.fields[detail]}"), console=console)


def _board_ports(args: argparse.Namespace, console: Console) -> Iterator[str]:
    if not args.wait:
        yield from args.ports
        return
    known = set(list_ports())
    taken = 0
    while not args.count or taken < args.count:
        console.print(f"Waiting for a board to be plugged in ({taken} done; Ctrl-C to stop)…")
        port = wait_for_new_port(known)
        known.add(port)
        taken += 1
        yield port


def wait_for_new_port(known: set[str]) -> str:
    """Block until a serial port appears that is not in `known` (forgetting unplugged ones)."""
    while True:
        current = set(list_ports())
        known &= current
        new = sorted(current - known)
        if new:
            time.sleep(PORT_SETTLE_S)
            return new[0]
        time.sleep(PORT_POLL_S)


def run(args: argparse.Namespace) -> int:
    if not args.ports and not args.wait:
        raise UserError("give the serial port(s) of the board(s), e.g. /dev/ttyUSB0, or --wait")
    plan = build_plan(args)
    console = Console(highlight=False)
    outcomes: list[provision.Outcome] = []
    try:
        for port in _board_ports(args, console):
            console.print(f"[bold]Board on {port}[/bold]")
            with _bars(console) as progress:
                bars = StepBars(progress)
                board = open_board(port, args.baud)
                outcome = provision.Outcome(port)
                outcomes.append(outcome)
                try:
                    provision.provision(board, plan, bars, outcome)
                except UserError as exc:
                    bars.fail(str(exc).split(":")[0])
                    outcome.detail = str(exc)
                except OSError as exc:  # e.g. a registry or password file this user cannot read
                    outcome.detail = f"{exc.filename or 'a file'}: {exc.strerror or exc}; nothing was changed"
                    bars.fail(outcome.detail)
                finally:
                    board.close()
            if not outcome.ok:
                console.print(f"[red]✗ {port}: {outcome.detail}[/red]")
    except KeyboardInterrupt:
        console.print("Stopped.")
    console.print(summary_table(outcomes))
    return 0 if outcomes and all(o.ok for o in outcomes) else 1


def summary_table(outcomes: list[provision.Outcome]) -> Table:
    table = Table(title="boucle flash: summary")
    for column in ("port", "device", "chip", "result", "label"):
        table.add_column(column)
    for o in outcomes:
        # The full message was printed under the board's bars; the table keeps its gist.
        gist = o.detail.split("; ")[0].split(" (")[0]
        table.add_row(o.port, o.device_id, o.chip, f"[green]ok[/green] {gist}" if o.ok else
                      f"[red]failed[/red] {gist}", str(o.label_path or "-"))
    return table
