"""One board from bare to registered and reporting: the stages of `boucle flash`.

Order matters for safety. Everything that can be decided without touching the board
or the files (image, credentials and signing key, config, registry/password/ACL/key-store
texts, compiled app, label) is prepared first; then the board is erased, flashed and
loaded; the files (registry, Mosquitto password file and ACL, the device key store, and
the NATS users if asked) are swapped in
together only after that; if the device then does not report, they are put back. So a
failure at any stage leaves them as they were.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from boucle import device_keys
from boucle.cli import UserError
from boucle.registry import DEVICE_ID

from . import credentials, images, install, label, nats_authorization, registry_edit, verify
from .board import Board, ChipInfo, ProgressFn
from .transaction import FileTransaction, TransactionError

STEPS = ("detect", "image", "prepare", "erase", "flash", "install", "config", "commit", "verify", "label")


class Reporter(Protocol):
    """Where progress goes: one bar per step (workshop.flash draws them with rich)."""

    def start(self, step: str) -> ProgressFn: ...

    def finish(self, step: str, detail: str) -> None: ...


@dataclass(frozen=True)
class BenchPlan:
    """Everything that is the same for every board of a batch."""

    registry_path: Path
    password_file: Path
    acl_file: Path
    site: str
    profile: str
    device_fields: dict[str, Any]   # channel / stream / rated_power_w / capacity_kg ...
    wifi_ssid: str
    wifi_password: str = field(repr=False)
    broker_host: str                # as the device reaches it
    broker_port: int
    ca_pem: str | None
    prefix: str
    watch: verify.BrokerAccess      # how this machine reaches the broker (observer account)
    image_dir: Path
    image_path: Path | None = None
    image_sha256: str | None = None
    keep_micropython: bool = False  # re-provision a board already running MicroPython
    expected_chip: str | None = None
    id_prefix: str = "esp32"
    id_style: str = "short"         # short: <prefix>-<last 6 hex of MAC>; mac: <prefix>-<12 hex>
    force: bool = False
    verify: bool = True
    verify_timeout: float = 120.0
    reload_broker: str | None = None
    label_dir: Path | None = None
    label_format: str = "png"
    firmware_dir: Path = install.FIRMWARE_DIR
    nats_authorization_file: Path | None = None  # the clustered broker's users (deploy/nats)
    key_store: Path | None = None   # the gateway's device keys (boucle.device_keys); None: the device does not sign


@dataclass
class Outcome:
    """One row of the summary table."""

    port: str
    device_id: str = "-"
    chip: str = "-"
    ok: bool = False
    detail: str = ""
    label_path: Path | None = None


def device_id_for(mac: str, prefix: str = "esp32", style: str = "short") -> str:
    """The device id derived from a MAC address, checked against the protocol's pattern."""
    hexdigits = mac.replace(":", "").replace("-", "").lower()
    if not re.fullmatch(r"[0-9a-f]{12}", hexdigits):
        raise UserError(f"cannot derive a device id from MAC {mac!r}")
    suffix = hexdigits[-6:] if style == "short" else hexdigits
    device_id = f"{prefix}-{suffix}"
    if not re.match(DEVICE_ID, device_id):
        raise UserError(f"device id {device_id!r} does not match {DEVICE_ID}; choose another --id-prefix "
                        "(lower-case letters, digits, '-' and '_')")
    return device_id


def profile_kind(profile: str) -> str:
    from boucle_fw.config import profiles

    catalogue = profiles()
    if profile not in catalogue:
        raise UserError(f"unknown profile {profile!r}; use one of {', '.join(sorted(catalogue))}")
    return catalogue[profile]["kind"]


@dataclass
class _Prepared:
    device_id: str
    family: images.ChipFamily
    image: images.Image | None
    config_json: bytes = field(repr=False)
    device_password: str = field(repr=False)
    app: list[install.AppFile]
    transaction: FileTransaction
    label_bytes: bytes | None


def _prepare(plan: BenchPlan, info: ChipInfo, family: images.ChipFamily,
             image: images.Image | None) -> _Prepared:
    from boucle_fw.config import make_config, validate

    device_id = device_id_for(info.mac, plan.id_prefix, plan.id_style)
    registry_text = plan.registry_path.read_text("utf-8")
    entry = {"id": device_id, "site": plan.site, "kind": profile_kind(plan.profile),
             "profile": plan.profile, **plan.device_fields}
    try:
        new_registry = registry_edit.with_device(registry_text, entry, plan.force, plan.registry_path)
    except registry_edit.RegistryEditError as exc:
        raise UserError(str(exc)) from None
    password = credentials.generate_password()
    signing = {"sign_key": device_keys.generate_key()} if plan.key_store is not None else {}
    try:
        config = make_config(device_id, plan.wifi_ssid, plan.wifi_password, plan.broker_host, plan.broker_port,
                             device_id, password, plan.ca_pem, plan.profile, prefix=plan.prefix,
                             interval_s=plan.device_fields.get("interval_s", 60), **signing)
    except ValueError as exc:
        raise UserError(f"the device config is not valid: {exc}") from None
    problems = validate(config)
    if problems:  # make_config validates too; this is the check the firmware runs at boot
        raise UserError(f"the device config is not valid: {problems[0]}")
    old_passwd = plan.password_file.read_text("utf-8") if plan.password_file.exists() else ""
    old_acl = plan.acl_file.read_text("utf-8") if plan.acl_file.exists() else ""
    transaction = FileTransaction()
    transaction.stage(plan.registry_path, new_registry)
    transaction.stage(plan.password_file, credentials.with_password(
        old_passwd, device_id, credentials.hash_password(password)))
    transaction.stage(plan.acl_file, credentials.with_acl(old_acl, device_id, plan.prefix))
    if plan.nats_authorization_file is not None:
        transaction.stage(plan.nats_authorization_file, _with_nats_user(plan, device_id, password))
    if plan.key_store is not None:
        # a new file is created 0600 (FileTransaction's temporary files are), an existing one keeps its mode
        old_keys = plan.key_store.read_text("utf-8") if plan.key_store.exists() else ""
        transaction.stage(plan.key_store, device_keys.with_key(old_keys, device_id, signing["sign_key"]))
    app = install.app_files(family.mpy_arch, plan.firmware_dir)
    label_bytes = None
    if plan.label_dir is not None:
        site = registry_edit.check(new_registry, plan.registry_path).site(plan.site)
        label_bytes = label.render(label.LabelText(device_id, plan.site, site.name if site else plan.site,
                                                   plan.profile, info.mac), plan.label_format)
    return _Prepared(device_id, family, image, json.dumps(config).encode(), password, app,
                     transaction, label_bytes)


def _with_nats_user(plan: BenchPlan, device_id: str, password: str) -> str:
    path = plan.nats_authorization_file
    try:
        return nats_authorization.with_device(path.read_text("utf-8"), device_id,
                                              nats_authorization.hash_password(password), plan.prefix)
    except (OSError, ValueError) as exc:
        raise UserError(f"--nats-authorization-file {path}: {exc}") from None


def _find_image(plan: BenchPlan, family: images.ChipFamily) -> images.Image:
    try:
        if plan.image_path is not None:
            return images.load_image(plan.image_path, plan.image_sha256, family)
        return images.find_image(family, plan.image_dir)
    except images.ImageError as exc:
        raise UserError(str(exc)) from None


def _reload_broker(command: str | None) -> None:
    if not command:
        return
    # The operator's own command line, run by the shell so that `$(pidof mosquitto)` works.
    result = subprocess.run(command, shell=True, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"--reload-broker command failed (exit {result.returncode}): "
                        f"{(result.stderr or result.stdout).strip()[:200]}")


def provision(board: Board, plan: BenchPlan, report: Reporter, outcome: Outcome | None = None) -> Outcome:
    """Run every stage on one board; raise UserError (files untouched) when one fails.

    `outcome` is filled in as the stages learn the chip and the device id, so a caller
    still has them for its summary when a later stage fails.
    """
    outcome = outcome or Outcome(board.port)

    report.start("detect")
    info = board.detect()
    try:
        family = images.family_of(info.chip)
    except images.ImageError as exc:
        raise UserError(str(exc)) from None
    if plan.expected_chip and images.family_by_key(plan.expected_chip) is not family:
        raise UserError(f"wrong chip: the board on {board.port} is an {info.chip}, not the "
                        f"{images.family_by_key(plan.expected_chip).chip} asked for with --chip")
    outcome.chip = info.chip
    outcome.device_id = device_id_for(info.mac, plan.id_prefix, plan.id_style)
    report.finish("detect", f"{info.chip}, MAC {info.mac}")

    report.start("image")
    image = None if plan.keep_micropython else _find_image(plan, family)
    report.finish("image", f"{image.path.name} at {family.offset:#x}" if image else
                  "kept the board's MicroPython (--keep-micropython)")

    report.start("prepare")
    prepared = _prepare(plan, info, family, image)
    outcome.device_id = prepared.device_id
    report.finish("prepare", f"{prepared.device_id}: config valid, credentials and registry entry staged")

    progress = report.start("erase")
    if image is not None:
        board.erase_flash(progress)
    report.finish("erase", "flash erased" if image else "skipped: filesystem kept")

    progress = report.start("flash")
    if image is not None:
        board.write_flash(family.offset, image.data, progress)
    report.finish("flash", f"MicroPython written ({len(image.data) // 1024} KiB)" if image else "skipped")

    progress = report.start("install")
    done = install.install(board, prepared.app, progress)
    report.finish("install", f"{len(done.copied)} files copied, {len(done.skipped)} unchanged")

    progress = report.start("config")
    from boucle_fw.config import CONFIG_PATH

    board.write_file(CONFIG_PATH, prepared.config_json, progress)
    report.finish("config", f"{CONFIG_PATH} written")

    label_temp = None
    label_path = None
    if prepared.label_bytes is not None and plan.label_dir is not None:
        plan.label_dir.mkdir(parents=True, exist_ok=True)
        label_path = plan.label_dir / f"{prepared.device_id}.{plan.label_format}"
        label_temp = label_path.with_name(f".{label_path.name}.tmp")
        label_temp.write_bytes(prepared.label_bytes)
    try:
        report.start("commit")
        try:
            prepared.transaction.commit()
        except TransactionError as exc:
            raise UserError(str(exc)) from None
        _reload_broker(plan.reload_broker)
        report.finish("commit", "registry, password file and ACL updated")

        report.start("verify")
        if plan.verify:
            _verify(board, plan, prepared)
            report.finish("verify", "birth message and first telemetry received")
        else:
            board.reset()
            report.finish("verify", "skipped (--no-verify)")

        report.start("label")
        if label_temp is not None and label_path is not None:
            try:
                os.replace(label_temp, label_path)
            except OSError as exc:
                raise UserError(f"cannot write the label {label_path}: {exc.strerror or exc}") from None
            outcome.label_path = label_path
            report.finish("label", str(label_path))
        else:
            report.finish("label", "none asked")
    except Exception as exc:
        undone = _undo(prepared.transaction, plan)
        if isinstance(exc, UserError):
            raise UserError(f"{exc} ({undone})") from None
        raise
    finally:
        if label_temp is not None:
            label_temp.unlink(missing_ok=True)
    outcome.ok = True
    outcome.detail = "registered and reporting" if plan.verify else "registered (not verified)"
    return outcome


def _undo(transaction: FileTransaction, plan: BenchPlan) -> str:
    """Put the committed files back (if they were committed); say what became of them."""
    if not transaction.committed:
        return "registry, password file and ACL unchanged"
    left = transaction.rollback()
    try:
        _reload_broker(plan.reload_broker)
    except UserError:
        pass
    if left:
        return f"not put back because they changed meanwhile: {', '.join(map(str, left))}"
    return "registry, password file and ACL put back as they were"




def _verify(board: Board, plan: BenchPlan, prepared: _Prepared) -> None:
    """Reset the board into the app and wait for its birth and telemetry; diagnose silence."""
    with verify.DeviceWatch(plan.watch, plan.prefix, prepared.device_id) as watch:
        board.reset()
        seen = watch.wait(plan.verify_timeout)
    if seen.complete:
        return
    wifi = board.wifi_status()
    # Probe the address written in the device's config, with the device's own account.
    device_access = verify.BrokerAccess(plan.broker_host, plan.broker_port, prepared.device_id,
                                        prepared.device_password, ca_pem=plan.ca_pem)
    probe = verify.probe_credentials(device_access)
    cause = verify.diagnose(seen, wifi, probe, f"{plan.broker_host}:{plan.broker_port}")
    raise UserError(f"{prepared.device_id} did not report within {plan.verify_timeout:g} s: {cause}; "
                    "fix the cause and run boucle flash again on this board")
