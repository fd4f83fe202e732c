"""SerialBoard's MicroPython side (mpremote's real SerialTransport) against a raw REPL on a pty."""

from __future__ import annotations

import hashlib

import pytest

from tests.workshop.repl_device import ReplDevice
from workshop import install
from workshop.board import SerialBoard


@pytest.fixture
def device(tmp_path):
    root = tmp_path / "flash"
    root.mkdir()
    dev = ReplDevice(root)
    yield dev
    dev.close()


def test_app_install_through_mpremote_then_unchanged_files_skipped(device):
    board = SerialBoard(device.port)
    files = [f for f in install.app_files("xtensawin") if "/drivers/" not in f.device_path][:6]
    report = install.install(board, files)
    assert len(report.copied) == len(files)
    for f in files:
        assert device.host_path(f.device_path).read_bytes() == f.data
        assert board.file_sha256(f.device_path) == hashlib.sha256(f.data).hexdigest()
    again = install.install(board, files)
    assert again.copied == [] and len(again.skipped) == len(files)
    assert board.file_sha256("/lib/missing.mpy") is None
    board.close()


def test_config_write_and_wifi_state(device):
    board = SerialBoard(device.port)
    board.write_file("/config.json", b'{"device_id": "esp32-a1b2c3"}')
    assert device.host_path("/config.json").read_bytes() == b'{"device_id": "esp32-a1b2c3"}'
    assert board.wifi_status() == "STAT_GOT_IP"
    device.wifi = "STAT_WRONG_PASSWORD"
    board.reset()  # leaves the REPL, pulses EN (a pty ignores it), reconnects on next use
    assert board.wifi_status() == "STAT_WRONG_PASSWORD"
    board.close()
