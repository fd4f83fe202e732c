"""`boucle flash` end to end on fake boards, against a real Mosquitto.

The fake board (tests/workshop/fake_board.py) stands for the hardware only: once reset
it acts as the booted device, connecting with the credentials the tool wrote into its
config. Everything else is real: the firmware's config generator and validator, the
registry loader, mpy-cross, the password file and ACL read by Mosquitto after a SIGHUP.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from boucle_fw.config import validate

from boucle.cli import main
from boucle.device_keys import parse_keys
from boucle.registry import load_registry
from tests.servers import free_port
from tests.workshop.conftest import OBSERVER, OBSERVER_PASSWORD
from tests.workshop.fake_board import FakeBoard
from workshop import credentials, flash, images, transaction

WIFI_PASSWORD = "wifi-secret-7f3e"


class Bench:
    """The files, the broker and the boards of one test bench."""

    def __init__(self, tmp_path: Path, registry: Path, image_dir: Path, broker, monkeypatch):
        self.tmp_path, self.registry, self.image_dir, self.broker = tmp_path, registry, image_dir, broker
        self.labels = tmp_path / "labels"
        self.keys = tmp_path / "keys" / "device-keys"
        self.boards: dict[str, FakeBoard] = {}
        monkeypatch.setenv("BOUCLE_MQTT_HOST", "127.0.0.1")
        monkeypatch.setenv("BOUCLE_MQTT_PORT", str(broker.port))
        monkeypatch.setenv("BOUCLE_MQTT_USERNAME", OBSERVER)
        monkeypatch.setenv("BOUCLE_MQTT_PASSWORD", OBSERVER_PASSWORD)
        monkeypatch.setenv("BOUCLE_WIFI_PASSWORD", WIFI_PASSWORD)
        monkeypatch.setenv("COLUMNS", "240")  # rich wraps at the terminal width
        monkeypatch.setattr(flash, "open_board", self._open)

    def add(self, port: str, **kwargs) -> FakeBoard:
        self.boards[port] = FakeBoard(port, **kwargs)
        return self.boards[port]

    def _open(self, port: str, baud: int) -> FakeBoard:
        return self.boards[port]

    def argv(self, *ports: str, reload: bool = True, extra: tuple[str, ...] = ()) -> list[str]:
        args = ["flash", *ports, "--registry", str(self.registry),
                "--password-file", str(self.broker.password_file), "--acl-file", str(self.broker.acl_file),
                "--key-store", str(self.keys), "--site", "ecully-fablab", "--profile", "energy-pzem", "--rated-power-w", "9000",
                "--wifi-ssid", "atelier", "--image-dir", str(self.image_dir),
                "--label-dir", str(self.labels), "--verify-timeout", "20", *extra]
        if reload:
            args += ["--reload-broker", self.broker.reload_command()]
        return args

    def snapshot(self) -> dict[str, bytes]:
        files = (self.registry, self.broker.password_file, self.broker.acl_file, self.keys)
        return {p.name: p.read_bytes() if p.exists() else None for p in files}


@pytest.fixture
def bench(tmp_path, registry_copy, image_dir, auth_broker, monkeypatch):
    return Bench(tmp_path, registry_copy, image_dir, auth_broker, monkeypatch)


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_full_run_registers_a_reporting_device(bench, capsys):
    board = bench.add("/dev/ttyFAKE0", chip="ESP32-S3", mac="34:85:18:a1:b2:c3")
    assert main(bench.argv("/dev/ttyFAKE0")) == 0
    out = capsys.readouterr()
    device_id = "esp32-a1b2c3"

    # MicroPython image at the S3 offset, app and config on the board.
    s3 = images.family_of("ESP32-S3")
    assert board.erased and list(board.flash) == [0] and board.flash[0] == images.find_image(s3, bench.image_dir).data
    assert "/lib/boucle_fw/protocol.mpy" in board.files
    config = board.config
    assert validate(config) == []
    assert config["device_id"] == device_id and config["mqtt"]["username"] == device_id
    assert config["wifi"] == {"ssid": "atelier", "password": WIFI_PASSWORD, "reconnects": 10}
    assert config["mqtt"]["port"] == bench.broker.port and config["sensors"][0]["type"] == "pzem"

    # Registry, password file (the password the device holds), ACL.
    device = load_registry(bench.registry).device(device_id)
    assert device is not None and device.site == "ecully-fablab" and device.profile == "energy-pzem"
    assert device.channel == "grid_import" and device.rated_power_w == 9000
    users = credentials.password_users(bench.broker.password_file.read_text())
    assert credentials.check_password(config["mqtt"]["password"], users[device_id])
    assert credentials.acl_block(device_id, "boucle/v1") in bench.broker.acl_file.read_text()

    # The signing key: on the device and in the key store (0600), nowhere in the registry.
    assert parse_keys(bench.keys.read_text()) == {device_id: bytes.fromhex(config["sign_key"])}
    assert bench.keys.stat().st_mode & 0o777 == 0o600
    assert config["sign_key"] not in bench.registry.read_text()

    # The device really reported, the label exists, no secret was printed.
    assert "published" in board.device_log
    label = bench.labels / f"{device_id}.png"
    assert label.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = _flat(out.out + out.err)
    assert "birth message and first telemetry received" in text and "registered and reporting" in text
    assert WIFI_PASSWORD not in text and config["mqtt"]["password"] not in text and config["sign_key"] not in text
    assert board.closed


def test_batch_of_two_chips_and_svg_labels(bench, capsys):
    classic = bench.add("/dev/ttyFAKE0", chip="ESP32", mac="24:0a:c4:00:00:01")
    bench.add("/dev/ttyFAKE1", chip="ESP32-C3", mac="24:0a:c4:00:00:02")
    assert main(bench.argv("/dev/ttyFAKE0", "/dev/ttyFAKE1", extra=("--label-format", "svg"))) == 0
    assert list(classic.flash) == [0x1000]
    registry = load_registry(bench.registry)
    assert registry.device("esp32-000001") and registry.device("esp32-000002")
    assert (bench.labels / "esp32-000002.svg").read_text().startswith("<svg")
    summary = _flat(capsys.readouterr().out)
    assert summary.count("registered and reporting") == 2


def test_wait_mode_takes_the_board_plugged_in(bench, monkeypatch, capsys):
    bench.add("/dev/ttyACM3", mac="24:0a:c4:00:00:03")
    present = iter([["/dev/ttyS0"], ["/dev/ttyS0"], ["/dev/ttyS0", "/dev/ttyACM3"]])
    monkeypatch.setattr(flash, "list_ports", lambda: next(present, ["/dev/ttyS0", "/dev/ttyACM3"]))
    monkeypatch.setattr(flash, "PORT_POLL_S", 0.01)
    monkeypatch.setattr(flash, "PORT_SETTLE_S", 0.01)
    assert main(bench.argv(extra=("--wait", "--count", "1"))) == 0
    assert load_registry(bench.registry).device("esp32-000003") is not None
    assert "Waiting for a board" in capsys.readouterr().out


# --- a failure at any step leaves the registry, password file and ACL as they were ------


@pytest.mark.parametrize("fail_at", ["detect", "erase_flash", "write_flash", "make_dirs", "write_file",
                                     "write_config", "reset"])
def test_board_failure_at_each_step_changes_no_file(bench, fail_at, capsys):
    bench.add("/dev/ttyFAKE0", fail_at=fail_at)
    before = bench.snapshot()
    assert main(bench.argv("/dev/ttyFAKE0")) == 1
    assert bench.snapshot() == before
    assert not bench.labels.exists() or not any(bench.labels.iterdir())
    assert f"injected failure at {fail_at}" in _flat(capsys.readouterr().out)


@pytest.mark.parametrize("failing_swap", [1, 2, 3])
def test_commit_failure_changes_no_file(bench, monkeypatch, failing_swap):
    bench.add("/dev/ttyFAKE0")
    before = bench.snapshot()
    real_replace, calls = os.replace, {"n": 0}

    def replace(src, dst):
        calls["n"] += 1
        if calls["n"] == failing_swap:
            raise OSError(5, "Input/output error", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(transaction.os, "replace", replace)
    assert main(bench.argv("/dev/ttyFAKE0")) == 1
    monkeypatch.undo()
    assert bench.snapshot() == before


def test_label_failure_changes_no_file(bench, capsys):
    board = bench.add("/dev/ttyFAKE0")
    (bench.labels / "esp32-a1b2c3.png").mkdir(parents=True)  # the label cannot take that name
    before = bench.snapshot()
    assert main(bench.argv("/dev/ttyFAKE0")) == 1
    assert bench.snapshot() == before
    assert "published" in board.device_log  # it failed after a successful verify
    assert "cannot write the label" in _flat(capsys.readouterr().out)


def test_broker_reload_failure_changes_no_file(bench):
    bench.add("/dev/ttyFAKE0")
    before = bench.snapshot()
    assert main([*bench.argv("/dev/ttyFAKE0", reload=False), "--reload-broker", "false"]) == 1
    assert bench.snapshot() == before


def test_silent_device_is_rolled_back(bench, capsys):
    board = bench.add("/dev/ttyFAKE0", online=False)
    before = bench.snapshot()
    assert main(bench.argv("/dev/ttyFAKE0", extra=("--verify-timeout", "1.5"))) == 1
    assert bench.snapshot() == before
    assert board.resets == 1
    out = _flat(capsys.readouterr().out)
    assert "did not report within 1.5 s" in out and "put back as they were" in out


def test_image_missing_says_what_to_get(bench, tmp_path, capsys):
    bench.add("/dev/ttyFAKE0", chip="ESP32-C6")
    empty = tmp_path / "no-images"
    before = bench.snapshot()
    assert main([*bench.argv("/dev/ttyFAKE0"), "--image-dir", str(empty)]) == 1
    assert bench.snapshot() == before
    out = _flat(capsys.readouterr().out)
    assert "image missing" in out and "ESP32_GENERIC_C6" in out and str(empty) in out


def test_wrong_chip_refused_before_erasing(bench, capsys):
    board = bench.add("/dev/ttyFAKE0", chip="ESP32-C3")
    assert main([*bench.argv("/dev/ttyFAKE0"), "--chip", "esp32s3"]) == 1
    assert not board.erased
    assert "wrong chip: the board on /dev/ttyFAKE0 is an ESP32-C3" in _flat(capsys.readouterr().out)


def test_registered_id_refused_unless_forced(bench, capsys):
    bench.add("/dev/ttyFAKE0")
    assert main(bench.argv("/dev/ttyFAKE0")) == 0
    before = bench.snapshot()
    again = bench.add("/dev/ttyFAKE0")
    assert main(bench.argv("/dev/ttyFAKE0")) == 1
    assert bench.snapshot() == before and not again.erased
    out = _flat(capsys.readouterr().out)
    assert "already registered" in out and "│ /dev/ttyFAKE0 │ esp32-a1b2c3 │" in out
    assert main([*bench.argv("/dev/ttyFAKE0"), "--force"]) == 0
    users = credentials.password_users(bench.broker.password_file.read_text())
    assert credentials.check_password(again.config["mqtt"]["password"], users["esp32-a1b2c3"])
    assert [d.id for d in load_registry(bench.registry).devices].count("esp32-a1b2c3") == 1


def test_reprovision_keeping_micropython_copies_only_what_changed(bench, capsys):
    board = bench.add("/dev/ttyFAKE0")
    assert main(bench.argv("/dev/ttyFAKE0")) == 0
    first_password = board.config["mqtt"]["password"]
    image = dict(board.flash)
    board.erased = False
    board.writes.clear()
    capsys.readouterr()
    assert main([*bench.argv("/dev/ttyFAKE0"), "--force", "--keep-micropython"]) == 0
    assert not board.erased and board.flash == image
    assert board.writes == ["/config.json"]  # every app file was already there
    app_count = len([p for p in board.files if p != "/config.json"])
    assert f"0 files copied, {app_count} unchanged" in _flat(capsys.readouterr().out)
    users = credentials.password_users(bench.broker.password_file.read_text())
    assert board.config["mqtt"]["password"] != first_password
    assert credentials.check_password(board.config["mqtt"]["password"], users["esp32-a1b2c3"])


def test_waste_profile_needs_a_stream(bench, capsys):
    bench.add("/dev/ttyFAKE0")
    argv = [a if a != "energy-pzem" else "waste-scale" for a in bench.argv("/dev/ttyFAKE0")]
    assert main(argv) == 2
    assert "pass --stream" in capsys.readouterr().err
    assert main([*argv, "--stream", "wood", "--capacity-kg", "300"]) == 0
    device = load_registry(bench.registry).device("esp32-a1b2c3")
    assert device.kind == "waste" and device.stream == "wood" and device.capacity_kg == 300


def test_water_profile_flashes_a_water_meter(bench):
    board = bench.add("/dev/ttyFAKE0")
    argv = [a if a != "energy-pzem" else "water-pulse" for a in bench.argv("/dev/ttyFAKE0")]
    assert main([*argv, "--rated-flow-m3-h", "2.5"]) == 0
    device = load_registry(bench.registry).device("esp32-a1b2c3")
    assert device.kind == "water" and device.profile == "water-pulse" and device.rated_flow_m3_h == 2.5
    assert board.config["sensors"] == [{"type": "water_pulse", "pin": 26, "litres_per_pulse": 1, "debounce_ms": 50}]
    assert board.config["water"] == {"persist_l": 50, "persist_s": 900} and validate(board.config) == []


# --- diagnosis when the device does not report --------------------------------------


def test_diagnosis_no_wifi(bench, capsys):
    bench.add("/dev/ttyFAKE0", wifi="STAT_NO_AP_FOUND")
    assert main(bench.argv("/dev/ttyFAKE0", extra=("--verify-timeout", "1"))) == 1
    assert "no Wi-Fi association: the access point was not found" in _flat(capsys.readouterr().out)


def test_diagnosis_broker_refused_credentials(bench, capsys):
    board = bench.add("/dev/ttyFAKE0")
    # No --reload-broker: Mosquitto never reads the new password file.
    assert main(bench.argv("/dev/ttyFAKE0", reload=False, extra=("--verify-timeout", "2"))) == 1
    assert "the broker refused the device's credentials" in _flat(capsys.readouterr().out)
    assert any("refused" in line for line in board.device_log)


def test_diagnosis_broker_unreachable(bench, capsys):
    bench.add("/dev/ttyFAKE0")
    nobody = str(free_port())
    assert main([*bench.argv("/dev/ttyFAKE0", extra=("--verify-timeout", "1")), "--broker-port", nobody]) == 1
    assert f"broker unreachable: nothing answers MQTT at 127.0.0.1:{nobody}" in _flat(capsys.readouterr().out)
