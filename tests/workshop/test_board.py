"""The real SerialBoard's errors, on real (pseudo-)terminals: no hardware, no fakes.

A pty is a serial port with nothing behind it: esptool gets no answer from a ROM
bootloader there, exactly as with a board that is not in download mode.
"""

from __future__ import annotations

import fcntl
import os
import re

import pytest
import serial

from workshop.board import BoardError, SerialBoard, explain_esptool_error


@pytest.fixture
def pty_port():
    master, slave = os.openpty()
    yield os.ttyname(slave)
    os.close(slave)
    os.close(master)


def test_missing_port(tmp_path):
    with pytest.raises(BoardError, match=r"port missing: .*ttyUSB9 does not exist.*ls /dev/ttyUSB"):
        SerialBoard(str(tmp_path / "ttyUSB9")).detect()


def test_board_not_in_download_mode(pty_port):
    board = SerialBoard(pty_port, connect_attempts=1)
    with pytest.raises(BoardError, match="board not in download mode.*hold BOOT"):
        board.detect()
    board.close()


def test_busy_port(pty_port):
    holder = os.open(pty_port, os.O_RDWR | os.O_NOCTTY)
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what another serial program holds
    try:
        with pytest.raises(BoardError, match="port busy: another program has .* open"):
            SerialBoard(pty_port, connect_attempts=1).detect()
    finally:
        os.close(holder)


def test_permission_denied_names_the_group(tmp_path):
    # pyserial's own message for EACCES (root cannot be denied, so the message is built here).
    exc = serial.SerialException(13, "could not open port /dev/ttyUSB0: [Errno 13] Permission denied: '/dev/ttyUSB0'")
    message = str(explain_esptool_error("/dev/ttyUSB0", str(exc)))
    assert "permission denied on /dev/ttyUSB0" in message
    assert "usermod -aG" in message and "uucp" in message


@pytest.mark.parametrize(("message", "expected"), [
    ("Failed to connect to ESP32: Wrong boot mode detected (0x13)! The chip needs to be in download mode.",
     "board not in download mode .* running its app"),
    ("Failed to connect to Espressif device: No serial data received.", "board not in download mode"),
    (("Could not open /dev/ttyUSB0, the port is busy or doesn't exist.\n([Errno 2] could not open port "
     "/dev/ttyUSB0: [Errno 2] No such file or directory: '/dev/ttyUSB0')"), "port missing"),
    (("Could not open /dev/ttyUSB0, the port is busy or doesn't exist.\n(Could not exclusively lock port "
     "/dev/ttyUSB0: [Errno 11] Resource temporarily unavailable)"), "port busy"),
    ("Unexpected chip ID value 99. Failed to autodetect chip type.", "wrong chip"),
])
def test_esptool_messages_mapped(message, expected):
    assert re.search(expected, str(explain_esptool_error("/dev/ttyUSB0", message)))
